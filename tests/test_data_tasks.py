"""Synthetic tasks: masks vs brute-force definitions, construction invariants, determinism."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from momentum_interp.data import (
    AssociativeRecallTask,
    InductionTask,
    RepeatedTokensTask,
    Task,
    earlier_occurrence_mask,
    make_task,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def copy_structure(tokens: torch.Tensor, mask: torch.Tensor) -> list[tuple[int, int, int]]:
    """(length, period, dst_start) per row, recovered from the mask and the tokens alone."""
    out = []
    for row, row_mask in zip(tokens.tolist(), mask.tolist(), strict=True):
        dst = row_mask.index(True)
        length = sum(row_mask) + 1
        out.append((length, dst - row.index(row[dst]), dst))
    return out


# ---------------------------------------------------------------- earlier_occurrence_mask


def test_earlier_occurrence_mask_hand_example():
    # 5 7 5 7 | 9 5 8: t=2 (5, earlier 5 -> 7, next 7) True; t=3 (7 -> 5, next 9) False;
    # t=5 (5: earlier nexts {7} but next 8) False; t=6 last -> False.
    tokens = torch.tensor([[5, 7, 5, 7, 9, 5, 8], [1, 2, 1, 3, 1, 2, 4]])
    expected = torch.tensor(
        [[0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]],  # row 2: "1" is followed by 2 and 3
        dtype=torch.bool,
    )
    assert torch.equal(earlier_occurrence_mask(tokens), expected)


# ---------------------------------------------------------------- InductionTask


@settings(max_examples=30, deadline=None)
@given(
    d_extra=st.integers(0, 8),
    max_repeat=st.integers(2, 8),
    min_repeat=st.integers(2, 8),
    extra_len=st.integers(0, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_induction_mask_matches_brute_force(d_extra, max_repeat, min_repeat, extra_len, seed):
    min_repeat = min(min_repeat, max_repeat)
    seq_len = 2 * max_repeat + 1 + extra_len
    task = InductionTask(seq_len - min_repeat + d_extra, seq_len, min_repeat, max_repeat)
    batch = task.sample(16, gen(seed))
    assert torch.equal(batch.loss_mask, earlier_occurrence_mask(batch.tokens))
    assert batch.tokens.min() >= 0 and batch.tokens.max() < task.d_vocab
    for length, period, _ in copy_structure(batch.tokens, batch.loss_mask):
        assert min_repeat <= length <= max_repeat and period >= length


def test_induction_copy_equals_source_and_rest_distinct():
    task = InductionTask()
    batch = task.sample(64, gen(1))
    structure = copy_structure(batch.tokens, batch.loss_mask)
    for row, (length, period, dst) in zip(batch.tokens.tolist(), structure, strict=True):
        assert row[dst : dst + length] == row[dst - period : dst - period + length]
        assert len(set(row)) == task.seq_len - length  # only the copy repeats anything


def test_induction_lengths_periods_and_positions_vary():
    task = InductionTask()
    batch = task.sample(256, gen(2))
    lengths, periods, starts = zip(*copy_structure(batch.tokens, batch.loss_mask), strict=True)
    assert set(lengths) == set(range(task.min_repeat, task.max_repeat + 1))
    assert len(set(periods)) > 20 and len(set(starts)) > 20


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "task",
    [
        InductionTask(),
        RepeatedTokensTask(),
        RepeatedTokensTask(bos_token=0),
        AssociativeRecallTask(),
    ],
    ids=lambda t: t.name,
)
def test_tasks_deterministic_devices_dtypes(task, device):
    assert isinstance(task, Task)
    a, b, c = (
        task.sample(8, gen(3, device)),
        task.sample(8, gen(3, device)),
        task.sample(8, gen(4, device)),
    )
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.loss_mask, b.loss_mask)
    assert not torch.equal(a.tokens, c.tokens)
    assert a.tokens.dtype == torch.int64 and a.loss_mask.dtype == torch.bool
    assert a.tokens.shape == a.loss_mask.shape == (8, task.seq_len)
    assert a.tokens.device.type == a.loss_mask.device.type == device
    assert not a.loss_mask[:, -1].any() and a.loss_mask.any(dim=1).all()
    assert a.tokens.min() >= 0 and a.tokens.max() < task.d_vocab


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seq_len": 32, "max_repeat": 16}, "seq_len >= 33"),
        ({"d_vocab": 32, "seq_len": 64}, "use d_vocab >= 60"),
        ({"min_repeat": 1}, "min_repeat"),
        ({"min_repeat": 9, "max_repeat": 8}, "min_repeat <= max_repeat"),
    ],
)
def test_induction_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InductionTask(**kwargs)


# ---------------------------------------------------------------- RepeatedTokensTask


@pytest.mark.parametrize("bos", [None, 5])
def test_repeated_tokens_structure_and_mask(bos):
    task = RepeatedTokensTask(d_vocab=11, half_len=7, bos_token=bos)
    batch = task.sample(32, gen(5))
    tokens, mask = batch.tokens, batch.loss_mask
    offset = 0 if bos is None else 1
    assert task.seq_len == offset + 14
    first, second = tokens[:, offset : offset + 7], tokens[:, offset + 7 :]
    assert torch.equal(first, second)
    expected = [offset + 7 <= t <= offset + 12 for t in range(task.seq_len)]
    assert mask.tolist() == [expected] * 32
    if bos is not None:
        assert (tokens[:, 0] == bos).all() and not (tokens[:, 1:] == bos).any()
    assert len(first.unique()) == task.d_vocab - offset  # every non-BOS token gets drawn


# ---------------------------------------------------------------- AssociativeRecallTask


def test_associative_recall_answers_by_dict_scan():
    task = AssociativeRecallTask(d_vocab=40, n_pairs=6, n_queries=5)
    batch = task.sample(64, gen(6))
    for row, row_mask in zip(batch.tokens.tolist(), batch.loss_mask.tolist(), strict=True):
        context = row[: 2 * task.n_pairs]
        keys, values = context[0::2], context[1::2]
        assert len(set(keys)) == task.n_pairs
        assert all(k < 20 for k in keys) and all(20 <= v < 40 for v in values)
        table = dict(zip(keys, values, strict=True))
        masked = [t for t, m in enumerate(row_mask) if m]
        assert masked == list(range(2 * task.n_pairs, task.seq_len, 2))
        assert all(row[t + 1] == table[row[t]] for t in masked)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"d_vocab": 10, "n_pairs": 6}, "d_vocab >= 12"),
        ({"n_queries": 0}, ">= 1"),
        ({"seq_len": 20}, "2 \\* \\(n_pairs \\+ n_queries\\) = 32"),
    ],
)
def test_associative_recall_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AssociativeRecallTask(**kwargs)


# ---------------------------------------------------------------- make_task


def test_make_task_builds_each_synthetic_task():
    assert make_task("induction", seq_len=40, d_vocab=50) == InductionTask(d_vocab=50, seq_len=40)
    assert make_task("repeated_tokens", half_len=4).seq_len == 8
    assert make_task("associative_recall", n_pairs=2, n_queries=3).seq_len == 10


def test_make_task_unknown_name_lists_valid_names():
    with pytest.raises(
        ValueError,
        match="Unknown task 'inducton' .*Valid: associative_recall, induction, mqar, repeated_tokens",
    ):
        make_task("inducton")


def test_make_task_unknown_kwarg_names_it_and_valid_ones():
    with pytest.raises(
        ValueError,
        match="task 'induction': 'seqlen' \\(did you mean 'seq_len'\\?\\).*min_repeat, seq_len",
    ):
        make_task("induction", seqlen=64)
    with pytest.raises(ValueError, match=r"task 'text': 'corpus_dir'\. Valid: .*sources"):
        make_task("text", corpus_dir="x")
