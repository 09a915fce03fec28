"""The harder MQAR generator: pair and query counts, query positions, keys never rebound,
the answer at each query, determinism per seed; each checked by a plain Python scan."""

from collections import Counter

import numpy as np
import pytest
import torch

from momentum_interp.data import MQARTask, make_task


def batch_of(task: MQARTask, seed: int, batch_size: int = 64):
    return task.sample(batch_size, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"d_vocab": 64, "n_pairs": 8, "n_queries": 5, "seq_len": 41},
        {"d_vocab": 512, "n_pairs": 48, "seq_len": 256},
    ],
)
def test_statistics_by_dictionary_scan(kwargs):
    task = MQARTask(**kwargs)
    batch = batch_of(task, seed=3)
    tokens, mask = batch.tokens.numpy(), batch.loss_mask.numpy()
    n_keys = task.d_vocab // 2
    assert tokens.shape == (64, task.seq_len) and tokens.min() >= 0 and tokens.max() < task.d_vocab
    for row, scored in zip(tokens, mask, strict=True):
        bindings = {}
        for t in range(0, 2 * task.n_pairs, 2):  # the binding block: key (< n_keys), value
            assert row[t] < n_keys <= row[t + 1]
            assert row[t] not in bindings  # a key is bound once
            bindings[int(row[t])] = int(row[t + 1])
        assert len(bindings) == task.n_pairs
        positions = np.flatnonzero(scored)
        assert len(positions) == task.n_queries
        assert np.all(positions >= 2 * task.n_pairs) and np.all(positions % 2 == 0)
        asked = Counter(int(row[p]) for p in positions)
        assert set(asked) <= set(bindings) and max(asked.values()) == 1  # distinct bound keys
        for p in positions:  # the next token is the value bound to the asked key
            assert row[p + 1] == bindings[int(row[p])]
        tail_keys = [t for t in range(2 * task.n_pairs, task.seq_len) if row[t] < n_keys]
        assert tail_keys == positions.tolist()  # no key anywhere else: never rebound/overwritten


def test_queries_spread_over_the_whole_tail():
    task = MQARTask(d_vocab=128, n_pairs=16, n_queries=4, seq_len=128)
    mask = batch_of(task, seed=0, batch_size=2000).loss_mask
    slot = (mask.nonzero()[:, 1] - 2 * task.n_pairs) // 2
    counts = torch.bincount(slot, minlength=task.n_slots).float()
    assert counts.numel() == task.n_slots
    expected = 2000 * task.n_queries / task.n_slots  # uniform slots: ~166.7 per slot
    assert counts.min() > 0.6 * expected and counts.max() < 1.4 * expected


def test_determinism_per_seed():
    task = MQARTask()
    a, b, c = batch_of(task, 7), batch_of(task, 7), batch_of(task, 8)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.loss_mask, b.loss_mask)
    assert not torch.equal(a.tokens, c.tokens)


def test_defaults_and_registry():
    task = make_task("mqar", n_pairs=20)
    assert (task.seq_len, task.d_vocab, task.n_queries) == (128, 256, 20)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_pairs": 0}, ">= 1"),
        ({"n_pairs": 4, "n_queries": 5}, "at most once"),
        ({"d_vocab": 16, "n_pairs": 9, "seq_len": 64}, "d_vocab >= 18"),
        ({"n_pairs": 40, "seq_len": 128}, "at least 160"),
    ],
)
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MQARTask(**kwargs)
