"""What a trace runs on: the default induction task for a model, and head-index checks."""

from __future__ import annotations

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


def check_head(model, layer: int, head: int) -> None:
    """Fail clearly when (layer, head) is not a head of `model`."""
    cfg = model.cfg
    if not 0 <= layer < cfg.n_layers:
        raise ValueError(f"layer={layer} is out of range for a {cfg.n_layers}-layer model.")
    if not 0 <= head < cfg.n_heads:
        raise ValueError(f"head={head} is out of range for {cfg.n_heads} heads per layer.")
