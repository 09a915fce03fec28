"""Head scores: induction, prefix matching, previous token, duplicate token, copying; plus the
model-level in-context-learning score.

Each score is one `HeadScore` entry of the registry `SCORES`: the hooks it reads, its qualifying
query rows and its mass (or a function of the weights). All attention scores of one batch come
from a single forward pass that caches only the hooks they name (`blocks.{l}.attn.hook_pattern`
for the built-in ones); every score is a masked sum, accumulated in float64 batch by batch (no
Python loop over positions, no stored detection patterns). The functions need only the TransformerLens model surface (`protocol.TLModel`): `cfg`
(`n_layers`, `n_heads`, `d_vocab`, `n_ctx`), `run_with_cache(tokens, names_filter=...)`
returning `(logits, cache)`, `W_E`, `W_U`, `W_V` and `W_O`, so they work on
`HookedMomentumTransformer` and on TransformerLens's `TransformerBridge`.

Definitions (query position t, key position s, `pattern[t, s]` the attention from t to s):

- ``induction``: on repeated random tokens (n random tokens, then the same n again), the
  attention from each query t in the repeat to key `t − n + 1`, the token after t's earlier
  occurrence (TransformerLens / ARENA's score: the `-(n−1)` diagonal over the repeat rows).
- ``prefix_matching``: attention mass on keys s ≤ t whose previous token equals the query's
  token (`tokens[s−1] == tokens[t]`, s ≥ 1), averaged over the query rows having such a key.
  This is `transformer_lens.head_detector`'s "induction_head" pattern, defined by token
  equality, so it applies to any sequence.
- ``duplicate_token``: attention mass on earlier keys s < t with `tokens[s] == tokens[t]`,
  averaged over the rows having such a key (head_detector's "duplicate_token_head").
- ``previous_token``: attention to t − 1, averaged over rows t ≥ 1.
- ``copying``: the eigenvalue summary of the full OV circuit `W_E W_V W_O W_U` (Elhage et al.
  2021), `Σ_i Re λ_i / Σ_i |λ_i|` ∈ [−1, 1]; positive means the head copies the attended token
  to the output.

Averages are pooled over every (sequence, query row) pair that qualifies, so head_detector's
single-sequence "mul" score equals ours times `qualifying rows / all rows`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from tqdm.auto import tqdm

from momentum_interp.analysis.protocol import TLModel
from momentum_interp.data import RepeatedTokensTask, TaskBatch
from momentum_interp.defaults import DEFAULT_SEED, SCORE_SEQUENCES
from momentum_interp.evaluation import per_token_loss
from momentum_interp.naming import head_label, unknown_names

# Default window of the in-context-learning score, as fractions of the sequence length T over
# the index j of the *predicted* token: early = the tokens around 10 % of the context, late =
# the last 10 % (Olsson et al. 2022 use the 500th minus the 50th token of a 512-token context).
EARLY_WINDOW = (0.05, 0.15)
LATE_WINDOW = (0.9, 1.0)

# Auto batch size: keep the cached patterns (+ logits) of one batch under this many bytes.
_CACHE_BUDGET_BYTES = 256 * 2**20
# Show a progress bar when a run has more batches than this (progress=None).
_PROGRESS_MIN_BATCHES = 4


# ----------------------------------------------------------------------------- tokens


def repeated_random_tokens(
    d_vocab: int,
    half_len: int,
    n_sequences: int,
    seed: int = 0,
    bos_token: int | None = None,
) -> Int[torch.Tensor, "batch pos"]:
    """`[n_sequences, offset + 2·half_len]` CPU tokens: uniform random ids, then their repeat.

    Drawn in one call from a CPU generator seeded with `seed` (via `RepeatedTokensTask`), so the
    tokens do not depend on how they are later batched, nor on the model's device. With
    `bos_token` every sequence starts with it (offset 1) and the random ids avoid it.
    """
    if n_sequences < 1:
        raise ValueError(f"n_sequences must be >= 1, got {n_sequences}.")
    task = RepeatedTokensTask(d_vocab=d_vocab, half_len=half_len, bos_token=bos_token)
    return task.sample(n_sequences, torch.Generator().manual_seed(seed)).tokens


def token_match_masks(
    tokens: Int[torch.Tensor, "batch pos"],
) -> tuple[Bool[torch.Tensor, "batch q_pos k_pos"], Bool[torch.Tensor, "batch q_pos k_pos"]]:
    """`(duplicate, prefix)` boolean masks `[batch, q_pos, k_pos]` from token equality.

    `duplicate[b, t, s]`: s < t and `tokens[s] == tokens[t]`.
    `prefix[b, t, s]`: 1 ≤ s ≤ t and `tokens[s−1] == tokens[t]`, i.e. `duplicate` shifted one
    key to the right (head_detector's induction pattern).
    """
    n_pos = tokens.shape[-1]
    equal = tokens[:, :, None] == tokens[:, None, :]
    earlier = torch.ones(n_pos, n_pos, dtype=torch.bool, device=tokens.device).tril(-1)
    duplicate = equal & earlier
    prefix = torch.zeros_like(duplicate)
    prefix[:, :, 1:] = duplicate[:, :, :-1]
    return duplicate, prefix


def _as_tokens(tokens: torch.Tensor | TaskBatch) -> torch.Tensor:
    tokens = tokens.tokens if isinstance(tokens, TaskBatch) else tokens
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(
            f"tokens must be a [batch, pos] tensor of ids or a TaskBatch, got {type(tokens).__name__}."
        )
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise ValueError(f"tokens must have shape [batch, pos], got {tuple(tokens.shape)}.")
    return tokens.long()


def _model_device(model) -> torch.device:
    return model.W_E.device


def _auto_batch_size(model, n_pos: int, n_sequences: int, cache_patterns: bool = True) -> int:
    cfg = model.cfg
    elem = torch.finfo(cfg.dtype).bits // 8 if isinstance(cfg.dtype, torch.dtype) else 4
    per_seq = n_pos * cfg.d_vocab * 4  # float32 logits / losses
    if cache_patterns:
        per_seq += cfg.n_layers * cfg.n_heads * n_pos * n_pos * elem
    budget = _CACHE_BUDGET_BYTES
    device = _model_device(model)
    if device.type == "cuda":  # batch-1 forwards would leave a GPU idle: a quarter of free memory
        budget = max(budget, torch.cuda.mem_get_info(device)[0] // 4)
    return max(1, min(n_sequences, budget // max(per_seq, 1)))


def _batches(
    tokens: torch.Tensor, batch_size: int, progress: bool | None, desc: str
) -> Iterator[torch.Tensor]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    starts = range(0, tokens.shape[0], batch_size)
    show = len(starts) > _PROGRESS_MIN_BATCHES if progress is None else progress
    for start in tqdm(starts, desc=desc, disable=not show, leave=False):
        yield tokens[start : start + batch_size]


# -------------------------------------------------------------------------- ICL score


Window = tuple[int, int]  # [start, stop) of per-token loss positions


def icl_score(position_loss: Float[torch.Tensor, " pos"], early: Window, late: Window) -> float:
    """Mean loss over the `late` positions minus the mean over the `early` ones (Olsson et al.'s
    in-context-learning score; negative when later context helps).

    `position_loss: [pos]` is the mean loss at each position, where position t predicts token
    t + 1 from t + 1 tokens of context (`per_token_loss`'s columns averaged over sequences).
    """
    for name, (start, stop) in (("early", early), ("late", late)):
        if not 0 <= start < stop <= len(position_loss):
            raise ValueError(
                f"the {name} window [{start}, {stop}) does not lie inside the "
                f"{len(position_loss)} scored positions; pick windows inside [0, {len(position_loss)}]"
            )
    return float(position_loss[slice(*late)].mean() - position_loss[slice(*early)].mean())


def fraction_windows(
    n_pos: int, early: tuple[float, float], late: tuple[float, float]
) -> tuple[Window, Window]:
    """Position windows of the per-token loss `[n_pos − 1]` (entry j−1 predicts token j) holding
    the tokens j with j / n_pos in each fraction window; an empty one (very short sequences) takes
    the position nearest its centre."""
    if n_pos < 3:
        raise ValueError(
            f"The in-context-learning score needs sequences of at least 3 tokens, got {n_pos}."
        )
    frac = torch.arange(1, n_pos, dtype=torch.float64) / n_pos
    picked = []
    for low, high in (early, late):
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"A window must satisfy 0 <= low < high <= 1, got ({low}, {high}).")
        inside = ((frac >= low) & (frac < high)).nonzero().flatten()
        if inside.numel() == 0:
            inside = (frac - (low + high) / 2).abs().argmin().reshape(1)
        picked.append((int(inside[0]), int(inside[-1]) + 1))  # contiguous: frac is increasing
    return picked[0], picked[1]


@torch.no_grad()
def in_context_learning_score(
    model: TLModel,
    tokens: Int[torch.Tensor, "batch pos"] | TaskBatch | None = None,
    *,
    n_sequences: int = 100,
    seed: int = 0,
    batch_size: int | None = None,
    early: tuple[float, float] = EARLY_WINDOW,
    late: tuple[float, float] = LATE_WINDOW,
    progress: bool | None = None,
) -> float:
    """Olsson et al.'s in-context-learning score: late loss minus early loss (negative = ICL).

    With sequences of length T and the per-token loss ℓ_j of predicting token j from tokens < j
    (averaged over sequences), the score is `mean ℓ_j over j/T ∈ late − mean ℓ_j over j/T ∈ early`;
    by default early = [0.05, 0.15) (the tokens around 10 % of the context) and late = [0.9, 1.0)
    (the last 10 %). Olsson et al. used the 500th minus the 50th token of a 512-token context.
    A window holding no position (very short sequences) uses the one nearest its centre.

    `tokens` should be natural sequences filling the context (`[batch, n_ctx]`, or a task's
    `TaskBatch`, whose loss mask is ignored: the score is about position). Without tokens, an
    integer-token model is scored on `n_sequences` repeated random-token sequences of length
    2·(n_ctx // 2): the early window then lies in the unpredictable first half and the late one
    in the repeat, so a model that does induction gets a clearly negative score.
    """
    if tokens is None:
        half_len = model.cfg.n_ctx // 2
        tokens = repeated_random_tokens(model.cfg.d_vocab, half_len, n_sequences, seed)
    tokens = _as_tokens(tokens)
    n_seq, n_pos = tokens.shape
    windows = fraction_windows(n_pos, early, late)  # validate before running the model
    if batch_size is None:
        batch_size = _auto_batch_size(model, n_pos, n_seq, cache_patterns=False)
    device = _model_device(model)
    loss_sum = torch.zeros(n_pos - 1, dtype=torch.float64)
    for batch in _batches(tokens, batch_size, progress, "ICL score"):
        batch = batch.to(device)
        loss_sum += per_token_loss(model(batch), batch).double().sum(0).cpu()
    return icl_score(loss_sum / n_seq, *windows)


# ---------------------------------------------------------------------- head scores


def copying_scores(model: TLModel) -> Float[torch.Tensor, "layer head"]:
    """`[layer, head]` float64: `Σ Re λ / Σ |λ|` over the eigenvalues λ of `W_E W_V W_O W_U`.

    The full OV circuit `W_E (W_V W_O) W_U` (`model.OV` as a `FactoredMatrix(W_V, W_O)`) stays
    factored: its non-zero eigenvalues are those of the small `W_O W_U W_E W_V` (`d_head × d_head`
    per head; `FactoredMatrix.eigenvalues` uses the same identity), and the other
    d_vocab − d_head eigenvalues are zero, adding nothing to either sum. Computed in float64 from
    the weights directly (building the `FactoredMatrix` costs a first-call `broadcast_shapes`
    of 0.3–0.5 s). A head whose circuit is zero gives NaN.
    """
    unembed_embed = model.W_U.detach().double() @ model.W_E.detach().double()  # [d_model, d_model]
    w_v, w_o = model.W_V.detach().double(), model.W_O.detach().double()
    w_v = w_v.repeat_interleave(w_o.shape[1] // w_v.shape[1], dim=1)  # grouped-query: shared W_V
    small = w_o @ unembed_embed @ w_v  # [layer, head, d_head, d_head]
    eigenvalues = torch.linalg.eigvals(small)
    return eigenvalues.real.sum(-1) / eigenvalues.abs().sum(-1)


@dataclass(frozen=True)
class ScoreBatch:
    """What a score sees of one batch: its tokens `[batch, pos]`, their token-match masks
    `[batch, q_pos, k_pos]` (`token_match_masks`) and the repeat structure, if any."""

    tokens: Int[torch.Tensor, "batch pos"]
    duplicate: Bool[torch.Tensor, "batch q_pos k_pos"]
    prefix: Bool[torch.Tensor, "batch q_pos k_pos"]
    half_len: int | None  # length of one copy (None: no repeat structure)
    repeat_start: int | None  # first query row of the repeat


@dataclass(frozen=True)
class HeadScore:
    """One head score of the registry `SCORES`. An attention score names the per-layer `hooks`
    it reads (`blocks.{layer}.<hook>`), its qualifying query `rows` per sequence (`[batch]`) and
    its `mass`, the per-head sum over those rows (`[batch, head]`) from one layer's activations
    (`{hook: tensor}`); its value is mass / rows pooled over sequences. A weight score has a
    `weights` function of the model instead (`[layer, head]`). `signed` scores lie in [−1, 1]."""

    name: str
    hooks: tuple[str, ...] = ()
    rows: Callable[[ScoreBatch], torch.Tensor] | None = None
    mass: Callable[[ScoreBatch, Mapping[str, torch.Tensor]], torch.Tensor] | None = None
    weights: Callable[[TLModel], torch.Tensor] | None = None
    signed: bool = False

    def __post_init__(self):
        attention = self.hooks and self.rows is not None and self.mass is not None
        if bool(attention) == (self.weights is not None):
            raise ValueError(
                f"score {self.name!r} needs either hooks, rows and mass, or weights (not both)."
            )


PATTERN = "attn.hook_pattern"


def _rows_of_every_sequence(count: Callable[[ScoreBatch], int]) -> Callable:
    return lambda b: torch.full((b.tokens.shape[0],), count(b))


def _masked_mass(mask: str) -> Callable:
    """Attention mass on the keys of a token-match mask, per head."""

    def mass(b: ScoreBatch, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        pattern = acts[PATTERN]  # [batch, head, q_pos, k_pos]
        return torch.einsum("bhts,bts->bh", pattern, getattr(b, mask).to(pattern.dtype))

    return mass


def _previous_mass(b: ScoreBatch, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return acts[PATTERN].diagonal(offset=-1, dim1=-2, dim2=-1).double().sum(-1)  # rows 1..T-1


def _induction_mass(b: ScoreBatch, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
    pattern = acts[PATTERN]
    if b.repeat_start is None or b.half_len is None:
        return torch.zeros(pattern.shape[:2], dtype=torch.float64, device=pattern.device)
    # Diagonal entry i is row t = half_len − 1 + i; keep the repeat rows.
    stripe = pattern.diagonal(offset=-(b.half_len - 1), dim1=-2, dim2=-1)
    return stripe[..., b.repeat_start - (b.half_len - 1) :].double().sum(-1)


# The head scores, in column order (see the module doc for their definitions).
SCORES: dict[str, HeadScore] = {
    score.name: score
    for score in (
        HeadScore(
            "induction",
            (PATTERN,),
            _rows_of_every_sequence(
                lambda b: 0 if b.repeat_start is None else b.tokens.shape[1] - b.repeat_start
            ),
            _induction_mass,
        ),
        HeadScore(
            "prefix_matching",
            (PATTERN,),
            lambda b: b.prefix.any(-1).sum(-1),
            _masked_mass("prefix"),
        ),
        HeadScore(
            "previous_token",
            (PATTERN,),
            _rows_of_every_sequence(lambda b: b.tokens.shape[1] - 1),
            _previous_mass,
        ),
        HeadScore(
            "duplicate_token",
            (PATTERN,),
            lambda b: b.duplicate.any(-1).sum(-1),
            _masked_mass("duplicate"),
        ),
        HeadScore("copying", weights=copying_scores, signed=True),
    )
}


def attention_scores() -> list[HeadScore]:
    """The registry's scores read from activations, in column order."""
    return [score for score in SCORES.values() if score.weights is None]


def score_columns() -> tuple[str, ...]:
    """The score columns of a score table: every registered score, in order."""
    return tuple(SCORES)


def check_score_name(name: str) -> str:
    """`name` if it is a registered score, else a ValueError naming the nearest ones."""
    if name not in SCORES:
        raise ValueError(unknown_names("score", [name], SCORES))
    return name


@dataclass
class HeadScoreSamples:
    """Per-sequence sums behind every attention score: the pooled score of head (l, h) is
    `numerators[name][:, l, h].sum() / rows[name].sum()`, so sequences can be resampled."""

    numerators: dict[str, Float[np.ndarray, "seq layer head"]]  # by score name, float64
    rows: dict[str, Int[np.ndarray, " seq"]]  # by score name: qualifying query rows
    loss_sum: torch.Tensor  # [pos - 1] float64, next-token loss summed over sequences
    seq_len: int
    half_len: int | None

    @property
    def n_sequences(self) -> int:
        return len(next(iter(self.rows.values())))


@torch.no_grad()
def head_score_samples(
    model: TLModel,
    tokens: Int[torch.Tensor, "batch pos"] | TaskBatch,
    *,
    half_len: int | None = None,
    offset: int = 0,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> HeadScoreSamples:
    """Per-sequence attention-score sums of every head on `tokens` (see `score_heads_on_tokens`).

    Without `half_len` the induction score has no qualifying rows.
    """
    tokens = _as_tokens(tokens)
    n_seq, n_pos = tokens.shape
    cfg = model.cfg
    n_layers = cfg.n_layers
    if half_len is not None:
        if half_len < 1 or offset < 0:
            raise ValueError(f"need half_len >= 1 and offset >= 0, got {half_len}, {offset}.")
        if offset + half_len >= n_pos:
            raise ValueError(
                f"offset + half_len = {offset + half_len} leaves no repeat rows in sequences of "
                f"length {n_pos}."
            )
    if batch_size is None:
        batch_size = _auto_batch_size(model, n_pos, n_seq)

    registry = attention_scores()
    hooks = sorted({hook for score in registry for hook in score.hooks})
    scores = {s.name: (s.rows, s.mass) for s in registry if s.rows and s.mass}  # name -> both
    wanted = {f"blocks.{layer}.{hook}" for layer in range(n_layers) for hook in hooks}
    per_batch: dict[str, list[torch.Tensor]] = {name: [] for name in scores}  # [b, layer, head]
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in scores}
    device = _model_device(model)  # sums stay on it: one copy to the host at the end, not per batch
    loss_sum = torch.zeros(n_pos - 1, dtype=torch.float64, device=device)
    repeat_start = None if half_len is None else offset + half_len

    for batch in _batches(tokens, batch_size, progress, "scoring heads"):
        batch = batch.to(device)
        logits, cache = model.run_with_cache(batch, names_filter=lambda name: name in wanted)
        view = ScoreBatch(batch, *token_match_masks(batch), half_len, repeat_start)
        sums: dict[str, list[torch.Tensor]] = {name: [] for name in scores}  # per layer: [b, head]
        for layer in range(n_layers):
            acts = {hook: _at_least_float32(cache[f"blocks.{layer}.{hook}"]) for hook in hooks}
            for name, (_, mass) in scores.items():
                sums[name].append(mass(view, acts).double())
        for name, (count_rows, _) in scores.items():
            rows[name].append(count_rows(view))
            per_batch[name].append(torch.stack(sums[name], dim=1))  # [b, layer, head]
        loss_sum += per_token_loss(logits, batch).double().sum(0)
        del cache, logits

    numerators = {name: torch.cat(v).cpu().numpy() for name, v in per_batch.items()}
    _check_finite_patterns(numerators, model.cfg.dtype)
    return HeadScoreSamples(
        numerators=numerators,
        rows={
            name: torch.cat([r.cpu() for r in v]).numpy().astype(np.int64)
            for name, v in rows.items()
        },
        loss_sum=loss_sum.cpu(),
        seq_len=n_pos,
        half_len=half_len,
    )


def _at_least_float32(activation: torch.Tensor) -> torch.Tensor:
    """Half-precision activations in float32, so sums over positions keep their digits."""
    if activation.dtype in (torch.float16, torch.bfloat16):
        return activation.float()
    return activation


def _check_finite_patterns(numerators: dict[str, np.ndarray], dtype) -> None:
    """Refuse scores of NaN or inf attention patterns, naming the heads (`numerators`: each
    score's per-sequence sums `[seq, layer, head]`, non-finite wherever a pattern entry is)."""
    bad = ~np.stack([np.isfinite(sums).all(0) for sums in numerators.values()]).all(0)
    if bad.any():
        heads = ", ".join(head_label(*h) for h in zip(*np.nonzero(bad), strict=True))
        raise ValueError(
            f"The attention patterns of {heads} are not finite (NaN or inf): the activations "
            f"overflow {str(dtype).removeprefix('torch.')} (e.g. a huge gamma or diverged "
            "weights), so their scores would be meaningless."
        )


def scores_table(
    model: TLModel,
    samples: HeadScoreSamples,
    early: tuple[float, float] = EARLY_WINDOW,
    late: tuple[float, float] = LATE_WINDOW,
) -> pd.DataFrame:
    """The pooled per-head score table (see `score_heads`) from per-sequence sums."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    scores = {}
    for score in SCORES.values():
        if score.weights is not None:
            scores[score.name] = score.weights(model).cpu().numpy()
            continue
        total_rows = int(samples.rows[score.name].sum())
        scores[score.name] = (
            samples.numerators[score.name].sum(0) / total_rows
            if total_rows
            else np.full((n_layers, n_heads), math.nan)
        )
    layer_idx, head_idx = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    df = pd.DataFrame(
        {
            "layer": layer_idx.ravel().astype(np.int64),
            "head": head_idx.ravel().astype(np.int64),
            **{name: scores[name].ravel().astype(np.float64) for name in SCORES},
        },
        columns=["layer", "head", *SCORES],
    )
    windows = fraction_windows(samples.seq_len, early, late)
    df.attrs["in_context_learning"] = icl_score(samples.loss_sum / samples.n_sequences, *windows)
    df.attrs["n_sequences"] = samples.n_sequences
    df.attrs["seq_len"] = samples.seq_len
    df.attrs["half_len"] = samples.half_len
    return df


def score_heads_on_tokens(
    model: TLModel,
    tokens: Int[torch.Tensor, "batch pos"] | TaskBatch,
    *,
    half_len: int | None = None,
    offset: int = 0,
    batch_size: int | None = None,
    early: tuple[float, float] = EARLY_WINDOW,
    late: tuple[float, float] = LATE_WINDOW,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Score every head on given tokens `[batch, pos]`; the engine behind `score_heads`.

    `prefix_matching`, `duplicate_token` and `previous_token` are defined for any tokens. The
    `induction` score needs the repeat structure: with `half_len=n` and `offset` (the number of
    tokens, e.g. a BOS, before the first copy), query rows t ≥ offset + n attend to key
    t − n + 1; without `half_len` the column is NaN. A score with no qualifying query row is
    NaN. `df.attrs["in_context_learning"]` is the ICL score of these tokens (see
    `in_context_learning_score`), computed from the same forward passes' logits.
    Returns the DataFrame described in `score_heads`.
    """
    fraction_windows(_as_tokens(tokens).shape[-1], early, late)  # validate before running the model
    samples = head_score_samples(
        model, tokens, half_len=half_len, offset=offset, batch_size=batch_size, progress=progress
    )
    return scores_table(model, samples, early, late)


def repeated_tokens_for(
    model: TLModel, n_sequences: int, half_len: int | None, seed: int, bos_token: int | None
) -> tuple[Int[torch.Tensor, "batch pos"], int, int]:
    """`(tokens, half_len, offset)`: the repeated random tokens `score_heads` scores `model` on."""
    offset = int(bos_token is not None)
    if half_len is None:
        half_len = (model.cfg.n_ctx - offset) // 2
    if half_len < 2:
        raise ValueError(f"half_len must be >= 2, got {half_len}.")
    if offset + 2 * half_len > model.cfg.n_ctx:
        raise ValueError(
            f"Sequences of {offset + 2 * half_len} tokens (2·half_len{' + BOS' if offset else ''}) "
            f"exceed n_ctx={model.cfg.n_ctx}; use half_len <= {(model.cfg.n_ctx - offset) // 2}."
        )
    tokens = repeated_random_tokens(model.cfg.d_vocab, half_len, n_sequences, seed, bos_token)
    return tokens, half_len, offset


def score_heads(
    model: TLModel,
    n_sequences: int = SCORE_SEQUENCES,
    half_len: int | None = None,
    seed: int = DEFAULT_SEED,
    batch_size: int | None = None,
    *,
    bos_token: int | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Score every attention head of `model` on repeated random tokens.

    Draws `n_sequences` sequences of `half_len` uniform random tokens followed by their exact
    repeat (`half_len` defaults to `(n_ctx − has_bos) // 2`; with `bos_token` each sequence
    starts with it), runs them through the model in batches of `batch_size` (default: as many as
    keep one batch's cached patterns under ~256 MiB), one forward pass per batch caching only the
    `hook_pattern` activations, and returns one row per head, sorted by (layer, head), with
    columns `layer, head, induction, prefix_matching, previous_token, duplicate_token, copying`:

    - induction: mean attention from each repeat query t to key t − half_len + 1;
    - prefix_matching: attention mass on keys s ≤ t with tokens[s−1] == tokens[t], mean over
      the rows having such a key (head_detector's induction pattern);
    - previous_token: attention to t − 1, mean over rows t ≥ 1;
    - duplicate_token: attention mass on keys s < t with tokens[s] == tokens[t], mean over the
      rows having such a key;
    - copying: `Σ Re λ_i / Σ |λ_i|` over the eigenvalues of the full OV circuit
      `W_E W_V W_O W_U` (Elhage et al. 2021), in [−1, 1]; positive = copying, negative =
      suppressing what is attended to.

    Means pool every qualifying (sequence, query row) pair. `df.attrs["in_context_learning"]`
    holds the model-level ICL score (late − early loss, negative = in-context learning; see
    `in_context_learning_score`) on the same sequences, from the same forward passes. The result
    depends only on `seed`, not on `batch_size` (up to float rounding).
    """
    tokens, half_len, offset = repeated_tokens_for(model, n_sequences, half_len, seed, bos_token)
    df = score_heads_on_tokens(
        model, tokens, half_len=half_len, offset=offset, batch_size=batch_size, progress=progress
    )
    df.attrs["seed"] = seed
    return df


# ------------------------------------------------------------------- presentation


def rank_heads(
    df: pd.DataFrame, by: str = "induction", top: int | None = 10, ascending: bool = False
) -> pd.DataFrame:
    """The `top` heads by score column `by` (highest first unless `ascending`); NaNs last."""
    if by not in df.columns:
        raise ValueError(f"Unknown score column {by!r}; choose one of {list(df.columns)}.")
    ranked = df.sort_values(by, ascending=ascending, kind="stable", na_position="last")
    if top is not None:
        ranked = ranked.head(top)
    return ranked.reset_index(drop=True)
