"""Weight processing as in TransformerLens (`fold_ln`, `center_writing_weights`, `center_unembed`,
`fold_value_biases`, `refactor_factored_attn_matrices`), exact for momentum attention.

The shear and the smeared key act on q and k *after* the projections and are linear in them with
coefficients that sum to 1 along the sequence, so a bias (constant over positions) passes through
unchanged and folding a norm's gain and offset into `W_Q`/`W_K`/`b_Q`/`b_K` leaves every score as
it was. Values are never filtered, and attention rows sum to 1, so `b_V` folds into `b_O`.
Centering the residual writes is exact only when every reader centres its input (LayerNorm), so
it is refused for RMSNorm and for models without a norm. The tests check each step against the
unprocessed model's logits.

Every edit goes through `_attention_weights` / `_mlp_weights` / `_norm_weights`, in place, so a
different storage layout (e.g. fused q/k/v) only needs those accessors adapted.
"""

from __future__ import annotations

import torch
from einops import einsum


def _attention_weights(attn: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Writable views of one layer's attention weights: W_Q/W_K/W_V `[head, d_model, d_head]`,
    b_Q/b_K/b_V `[head, d_head]`, W_O `[head, d_head, d_model]`, b_O `[d_model]`."""
    names = ("W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_O", "b_O")
    return {name: getattr(attn, name).data for name in names}


def _mlp_weights(mlp: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Writable views: W_in `[d_model, d_mlp]`, b_in, W_out `[d_mlp, d_model]`, b_out."""
    return {name: getattr(mlp, name).data for name in ("W_in", "b_in", "W_out", "b_out")}


def _norm_weights(norm: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Writable gain `w` and offset `b` (None for RMSNorm) of a LayerNorm / RMSNorm."""
    bias = getattr(norm, "b", None)
    return norm.w.data, None if bias is None else bias.data


@torch.no_grad()
def fold_layer_norm(model: torch.nn.Module) -> None:
    """Fold each norm's gain and offset into the weights that read it, leaving `w = 1`, `b = 0`
    (the norm still normalises). With LayerNorm the readers' input rows are also centred, which
    the norm's own centring makes exact."""
    cfg = model.cfg
    if cfg.normalization_type is None:
        raise ValueError("fold_ln: this model has no normalisation layers to fold.")
    centre = cfg.normalization_type == "LN"
    for block in model.blocks:
        attn = _attention_weights(block.attn)
        _fold_into(
            block.ln1,
            [(attn["W_Q"], attn["b_Q"]), (attn["W_K"], attn["b_K"]), (attn["W_V"], attn["b_V"])],
            input_dim=-2,
            centre=centre,
        )
        if not cfg.attn_only:
            mlp = _mlp_weights(block.mlp)
            _fold_into(block.ln2, [(mlp["W_in"], mlp["b_in"])], input_dim=0, centre=centre)
    unembed = model.unembed
    _fold_into(model.ln_final, [(unembed.W_U.data, unembed.b_U.data)], input_dim=0, centre=centre)


def _fold_into(
    norm: torch.nn.Module,
    readers: list[tuple[torch.Tensor, torch.Tensor]],
    input_dim: int,
    centre: bool,
) -> None:
    """`(x̂ ⊙ w + b) W + b_W = x̂ (w W) + (b W + b_W)`, for each reader `(W, b_W)` of the norm."""
    w, b = _norm_weights(norm)
    for W, b_W in readers:
        shape = [1] * W.ndim
        shape[input_dim] = -1
        if b is not None:
            b_W += b @ W  # [d_model] @ [..., d_model, d_out]
        W *= w.view(shape)
        if centre:
            W -= W.mean(dim=input_dim, keepdim=True)
    w.fill_(1.0)
    if b is not None:
        b.zero_()


@torch.no_grad()
def center_writing_weights(model: torch.nn.Module) -> None:
    """Remove the mean (over d_model) of every weight and bias that writes to the residual stream.

    Exact because every reader of the residual stream is a LayerNorm, which removes that mean."""
    _check_centring(model)
    writers = [model.embed.W_E.data]
    if model.cfg.positional_embedding_type == "standard":
        writers.append(model.pos_embed.W_pos.data)
    for block in model.blocks:
        attn = _attention_weights(block.attn)
        writers += [attn["W_O"], attn["b_O"]]
        if not model.cfg.attn_only:
            mlp = _mlp_weights(block.mlp)
            writers += [mlp["W_out"], mlp["b_out"]]
    for weight in writers:
        weight -= weight.mean(dim=-1, keepdim=True)


@torch.no_grad()
def center_unembed(model: torch.nn.Module) -> None:
    """Remove the mean over the vocabulary from `W_U` and `b_U`: every logit at a position moves by
    the same amount, so log-probabilities and logit differences are unchanged."""
    W_U, b_U = model.unembed.W_U.data, model.unembed.b_U.data
    W_U -= W_U.mean(dim=-1, keepdim=True)
    b_U -= b_U.mean()


@torch.no_grad()
def fold_value_biases(model: torch.nn.Module) -> None:
    """Move `b_V` into `b_O` (`b_O += Σ_h b_V[h] W_O[h]`): each pattern row sums to 1, so every
    head adds its `b_V W_O` exactly once per position."""
    for block in model.blocks:
        attn = _attention_weights(block.attn)
        attn["b_O"] += einsum(attn["b_V"], attn["W_O"], "h d, h d m -> m")
        attn["b_V"].zero_()


@torch.no_grad()
def refactor_factored_attn_matrices(model: torch.nn.Module) -> None:
    """TransformerLens's refactor (`ProcessWeights.refactor_factored_attn_matrices`): W_Q, W_K
    become the balanced factors of `[W_Q; b_Q] [W_K; b_K]ᵀ`, W_V, W_O the SVD factors `U S`, `Vᵀ`
    of `W_V W_O` (b_V folded into b_O). Exact with the shear for learned positions: every score
    is a sum of `⟨q_a, k_b⟩ = [x_a 1] W̃_Q W̃_Kᵀ [x_b 1]ᵀ` over shifted positions, which the
    refactor keeps, and values are not filtered. Refused with RoPE (`_check_refactor`)."""
    from transformer_lens.weight_processing import ProcessWeights  # imports the bridge stack

    _check_refactor(model)
    views = {
        f"blocks.{layer}.attn.{name}": weight
        for layer, block in enumerate(model.blocks)
        for name, weight in _attention_weights(block.attn).items()
    }
    state = {key: view.float() for key, view in views.items()}
    for key, value in ProcessWeights.refactor_factored_attn_matrices(state, model.cfg).items():
        views[key].copy_(value)


def _check_refactor(model: torch.nn.Module) -> None:
    if model.cfg.positional_embedding_type == "rotary":
        raise ValueError(
            "refactor_factored_attn_matrices is exact only when a head's scores depend on W_Q and "
            "W_K through W_Q W_Kᵀ alone; with RoPE the rotation between them makes that product "
            "position-dependent (TransformerLens refuses it too). Pass "
            "refactor_factored_attn_matrices=False."
        )


def _check_centring(model: torch.nn.Module) -> None:
    if model.cfg.normalization_type != "LN":
        raise ValueError(
            "center_writing_weights is exact only when every reader of the residual stream is a "
            f"LayerNorm (it removes the mean); this model uses normalization_type="
            f"{model.cfg.normalization_type!r}, where centring would change its outputs. Pass "
            "center_writing_weights=False (fold_ln, center_unembed and fold_value_biases stay exact)."
        )


STEPS = {
    "fold_ln": fold_layer_norm,
    "center_writing_weights": center_writing_weights,
    "center_unembed": center_unembed,
    "fold_value_biases": fold_value_biases,
    "refactor_factored_attn_matrices": refactor_factored_attn_matrices,
}


def compatibility_steps(cfg, **steps: bool) -> dict[str, bool]:
    """The steps TransformerBridge.enable_compatibility_mode runs for these flags: as there,
    `center_writing_weights` only when every residual reader is a LayerNorm (centring is skipped,
    not refused, for RMSNorm and norm-free models, where it would not be exact)."""
    return {
        **steps,
        "center_writing_weights": steps.get("center_writing_weights", False)
        and cfg.normalization_type == "LN",
    }


def process_weights(model: torch.nn.Module, **steps: bool) -> None:
    """TransformerLens's `process_weights`: the named `STEPS` set True, in TransformerLens's order.

    Every step is checked before any runs, so a refused step leaves the model untouched; `fold_ln`
    on a model without norms is skipped (there is nothing to fold), as in TransformerLens.
    """
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise ValueError(f"Unknown processing step(s) {unknown}; choose from {list(STEPS)}.")
    if steps.get("center_writing_weights"):
        _check_centring(model)
    if steps.get("refactor_factored_attn_matrices"):
        _check_refactor(model)
    for name, step in STEPS.items():
        if steps.get(name) and not (name == "fold_ln" and model.cfg.normalization_type is None):
            step(model)
