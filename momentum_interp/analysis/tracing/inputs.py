"""What a trace runs on: the default induction task for a model, and head checks."""

from __future__ import annotations

from momentum_interp.analysis.protocol import has_momentum_attention
from momentum_interp.data import InductionTask


def default_induction_task(cfg, seq_len: int | None = None) -> InductionTask:
    """An `InductionTask` for a model config: its vocabulary, `seq_len` (default `n_ctx`), copies
    of 4–16 tokens (shortened to fit the context; lengthened where the vocabulary is too small
    to keep every non-copied token distinct)."""
    seq_len = cfg.n_ctx if seq_len is None else seq_len
    max_repeat = min(16, (seq_len - 1) // 2)
    min_repeat = max(min(4, max_repeat), seq_len - cfg.d_vocab, 2)
    if min_repeat > max_repeat:
        raise ValueError(
            f"n_ctx={cfg.n_ctx} and d_vocab={cfg.d_vocab} admit no InductionTask (every "
            "non-copied token must be distinct); pass task=InductionTask(...) with a shorter "
            "seq_len."
        )
    return InductionTask(
        d_vocab=cfg.d_vocab, seq_len=seq_len, min_repeat=min_repeat, max_repeat=max_repeat
    )


def check_head(model, layer: int | None, head: int | None) -> None:
    """Fail clearly when `layer` or `head` (either may be None: all of them) is out of range."""
    cfg = model.cfg
    if layer is not None and not 0 <= layer < cfg.n_layers:
        raise ValueError(f"layer={layer} is out of range for a {cfg.n_layers}-layer model.")
    if head is not None and not 0 <= head < cfg.n_heads:
        raise ValueError(f"head={head} is out of range for {cfg.n_heads} heads per layer.")


def check_momentum_head(model, layer: int, head: int) -> None:
    """`check_head`, and fail clearly when the model's attention is not momentum attention (a
    TransformerBridge): the trace's terms and ablations are those of a head's shear."""
    check_head(model, layer, head)
    if not has_momentum_attention(model):
        raise ValueError(
            f"The induction trace splits a head's score into the four terms of its momentum shear "
            f"and ablates the shear; this {type(model).__name__} has no momentum attention, so "
            "every term but q_t·k_s is zero and the shear ablations change nothing. Rank its "
            "heads with score_heads / rank_heads_ci, and see what a shear would do with the "
            "explorer (analysis.explorer_data, viz.explore) or analysis.what_if_shear_hooks."
        )
