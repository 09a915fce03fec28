"""The words on the result pages: headings, a trace's summary and caveats, its ablations'
descriptions, the band-orthogonality verdict and the explorer's slider caption, written from
the numbers and codes that `analysis/` returns (which holds no English)."""

from __future__ import annotations

import math

from momentum_interp.analysis.explorer import ExplorerModel
from momentum_interp.analysis.spectral import Separation, SpectralResult
from momentum_interp.analysis.tracing import InductionTrace
from momentum_interp.model.shear import TERM_NAMES
from momentum_interp.naming import head_label

# ------------------------------------------------------------------------------ traces


def trace_title(trace: InductionTrace) -> str:
    return f"Single-layer induction trace: {head_label(trace.layer, trace.head)}"


def trace_caveats(trace: InductionTrace) -> list[str]:
    """One sentence per caveat code of the trace (`tracing.trace.CAVEATS`)."""
    embedding = (
        "QK circuit: the residual stream at the layer is approximated by the token embedding "
        "passed through the layer's ln1"
    )
    words = {
        "qk_embedding": embedding + ".",
        "qk_embedding_no_positions": embedding + " (learned positional embeddings ignored).",
        "qk_earlier_layers": f"QK circuit: layer {trace.layer} > 0, so everything earlier layers "
        "write to the residual stream is ignored; the score decomposition and ablations are exact.",
        "qk_rotary_offset": "QK circuit: rotary's relative rotation is ignored (offset 0); at an "
        "induction key the relative offset between the query and the key's previous slot is the "
        "copy period, which varies from sequence to sequence.",
        "identity_smear": "gamma_zero ablation: a smeared key's γ = α − 1 comes from its learned "
        "logit and reaches α = 1 only at +∞, so the smear is set to the identity by zeroing "
        "hook_k_velocity in every head instead of set_gamma(0).",
    }
    return [words[code] for code in trace.caveats]


def ablation_description(trace: InductionTrace, ablation: str) -> str:
    """What one row of the trace's ablation table did (`tracing.ablations.induction_ablations`)."""
    head = head_label(trace.layer, trace.head)
    if ablation.startswith("remove_"):
        return f"{ablation.removeprefix('remove_')} term subtracted from {head}'s scores"
    return {
        "clean": "unablated model",
        "gamma_zero": {
            "set_gamma": "γ = 0 in every head (deep copy, set_gamma(0.0))",
            "identity_smear": "smear set to identity in every head (hook_k_velocity zeroed)",
            "none": "no momentum to switch off (shear='none'): equals clean",
        }[trace.gamma_zero_method],
        "velocity_zero_head": f"hook_q/k_velocity zeroed for {head} only",
        "mean_ablate_ov": f"{head}'s hook_z replaced by its mean (separate batches)",
    }[ablation]


def trace_summary(trace: InductionTrace) -> str:
    """A plain-text summary of the margins, ablations and QK circuit."""
    d = trace.decomposition
    lines = [
        f"Induction trace of {head_label(trace.layer, trace.head)} ({trace.model_kind}; "
        f"γq = {trace.gamma_q:.4g}, γk = {trace.gamma_k:.4g})",
        f"{d.n_queries} induction queries in {d.n_sequences} sequences; mean attention "
        f"on the induction key s* = {d.induction_attention:.3f}",
        f"Mean score margin of s* over the other causal keys: {d.total_margin:.4g}",
    ]
    for name in TERM_NAMES:
        lines.append(
            f"  {name:<20} margin {d.term_margins[name]:>+10.4g}   "
            f"share {d.term_shares[name]:>+8.3f}"
        )
    lines.append(f"Dominant term: {d.dominant_term}")
    lines.append("Ablations (induction accuracy / loss, delta vs clean):")
    for row in trace.ablations.itertuples():
        lines.append(
            f"  {row.ablation:<26} acc {row.accuracy:.3f} ({row.delta_accuracy:+.3f})   "
            f"loss {row.loss:.3f} ({row.delta_loss:+.3f})"
        )
    lines.append(
        f"QK circuit (current_prev_key): diagonal is the row max in "
        f"{trace.qk.diagonal_top1:.1%} of rows, mean diagonal z-score {trace.qk.diagonal_z:.2f}"
    )
    lines.append(
        f"QK circuit (current_current, contrast): top-1 {trace.qk_current.diagonal_top1:.1%}, "
        f"mean diagonal z-score {trace.qk_current.diagonal_z:.2f}"
    )
    lines.extend(f"Note: {note}" for note in trace_caveats(trace))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- spectra


def spectral_title(result: SpectralResult) -> str:
    return f"Spectral forensics: {result.label}"


SPECTRAL_NOTE = (
    "The first position has no predecessor (p_0 = 0, so it is not sheared) and a finite "
    "record leaks power between bins, so the measured ratio only approximates |H(ω)|²; "
    "the Hann window gives the unsheared first sample zero weight. For white input at "
    "T = 128 with 128 (sequence, channel) records every bin is within 5 % of |H|²; the "
    "error shrinks as 1/(T√N). For real activations, whose strong DC leaks into high "
    "bins, compare the band gains (measured vs predicted) rather than single bins."
)


def _heads(n: int) -> str:
    return f"{n} head{'s' if n != 1 else ''}"


def orthogonality_verdict(separation: Separation) -> str:
    """What the band-orthogonality table measured, against what the paper predicts
    (`spectral.orthogonality_summary`)."""
    s, factor = separation, separation.factor
    if s.outcome == "no_heads":
        return "No heads measured: nothing to compare with the orthogonality theorem."
    assert s.cutoff is not None and s.max_abs_cos is not None
    bands = f"bands split at ω = {s.cutoff / math.pi:.3g}π"
    if s.rotary is not None and s.plain is not None:
        r, n = s.rotary.cross_share, s.plain.cross_share
        r0, n0 = s.rotary.null_cross_share, s.plain.null_cross_share
        text = (
            f"Cross-band share of score energy {r:.2f} with RoPE ({_heads(s.rotary.n_heads)}) vs "
            f"{n:.2f} without ({_heads(s.plain.n_heads)}); chance level from the bands' energies "
            f"{r0:.2f} vs {n0:.2f} ({bands}). "
        )
        text += {
            "separated": f"The predicted separation shows: with RoPE the cross terms carry "
            f"{r / n:.0%} of the non-rotary level and {r / r0:.0%} of chance.",
            "not_lowered": "The predicted separation does not show: RoPE does not lower the "
            "cross terms.",
            "lowered_too_little": f"The predicted separation does not show: RoPE lowers the "
            f"cross terms only to {r / n:.0%} of the non-rotary level ({r / r0:.0%} of "
            f"chance); separation would need at most {factor:.0%} of both.",
        }[s.outcome]
    elif s.rotary is not None:
        r, r0 = s.rotary.cross_share, s.rotary.null_cross_share
        shows = "shows" if s.outcome == "separated_vs_chance" else "does not show"
        text = (
            f"Cross-band share of score energy {r:.2f} with RoPE ({_heads(s.rotary.n_heads)}) "
            f"vs chance level {r0:.2f} ({bands}); no non-rotary model measured for comparison. "
            f"Against chance the predicted separation {shows} (threshold {factor:.0%} of chance)."
        )
    else:
        assert s.plain is not None
        text = (
            "No rotary model measured, so the theorem's prediction (separation with RoPE) is "
            "untested; without RoPE the cross-band share of score energy is "
            f"{s.plain.cross_share:.2f} ({_heads(s.plain.n_heads)}; chance level "
            f"{s.plain.null_cross_share:.2f}, {bands})."
        )
    return text + (
        f" Low and high components are orthogonal over whole sequences (|cos| ≤ "
        f"{s.max_abs_cos:.1e}), but Parseval forces that for any signal, so it is no evidence "
        "either way."
    )


# --------------------------------------------------------------------------- explorer


def slider_caption(entry: ExplorerModel) -> str:
    """One line saying what the explorer's slider pattern is for one model's entry
    (`explorer.SLIDER_KINDS`)."""
    if entry.slider == "what_if":
        where = "after RoPE" if entry.rotary else "directly"
        kind = (
            f"This {entry.model_class} has no momentum: the slider shows what shearing its q "
            f"and k by γ ({where}, as analysis.what_if_shear_hooks does at inference) would do "
            "to this head (γ = 0 is the model itself)."
        )
    elif entry.slider == "smeared_key":
        kind = (
            "A smeared key α k_t + (1−α) k_t−1 is the keys-only shear γ = α − 1: the slider "
            "starts at each head's learned α − 1 and moves that key filter."
        )
    elif entry.slider == "no_shear":
        kind = (
            "This model was trained without a shear: the slider shows what shearing its q and k "
            "by γ would do to this head (γ = 0 is the model itself)."
        )
    else:
        sheared = "keys only" if entry.shear == "k" else "queries and keys"
        kind = f"The slider sets the shear γ of {sheared}; it starts at the head's own γ."
    if entry.n_layers == 1:
        return (
            kind
            + " For this 1-layer model the pattern at γ is the model's own pattern run with that γ."
        )
    return kind + (
        f" For this {entry.n_layers}-layer model it is the layer's pattern with its inputs frozen "
        "(earlier layers keep their own γ)."
    )
