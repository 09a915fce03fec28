"""save_pretrained / from_pretrained: bit-exact round trips and loud, helpful failures."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

import momentum_interp.io as mi_io
import momentum_interp.model.checkpoint as ckpt
from momentum_interp import CheckpointError, HookedMomentumTransformer, bundled_names


def _tokens(cfg, seed=2):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.d_vocab, (2, cfg.n_ctx), generator=gen)


def _assert_identical(a: HookedMomentumTransformer, b: HookedMomentumTransformer) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert torch.equal(sa[name], sb[name]), name
    assert a.cfg.to_dict() == b.cfg.to_dict()
    tokens = _tokens(a.cfg)
    with torch.no_grad():
        assert torch.equal(a(tokens), b(tokens))
    assert torch.equal(a.gamma_q, b.gamma_q) and torch.equal(a.gamma_k, b.gamma_k)


def _distinct_momentum(model):
    with torch.no_grad():
        for layer, block in enumerate(model.blocks):
            if isinstance(block.attn.gamma, torch.nn.Parameter):
                block.attn.gamma.copy_(torch.tensor([0.1, -0.9, 2.3, 5.0]) * (layer + 1))
            if hasattr(block.attn, "smear_logit"):
                block.attn.smear_logit.copy_(torch.tensor([-2.0, 0.5, 1.0, 3.0]) + layer)
    return model


ROUND_TRIPS = {
    "plain": dict(),
    "learnable_gamma": dict(gamma_learnable=True, positional_embedding_type="rotary"),
    "smeared_key": dict(shear="none", smeared_key=True, attn_only=True),
    "rotary_pre_k": dict(
        positional_embedding_type="rotary", shear="k", shear_placement="pre_rope", gamma=2.5
    ),
    "rotary_partial_rms_relu": dict(
        positional_embedding_type="rotary",
        d_head=8,
        rotary_dim=4,
        normalization_type="RMS",
        act_fn="relu",
    ),
    "float64_no_norm": dict(dtype="float64", normalization_type=None, gamma=-0.3),
    "shear_norm_temperature": dict(shear_norm=True, learned_temperature=True, gamma=0.6),
}


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_round_trip_is_bit_exact(make_model, tmp_path, name):
    model = _distinct_momentum(make_model(**ROUND_TRIPS[name]))
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = HookedMomentumTransformer.from_pretrained(tmp_path / "ckpt")
    assert not loaded.training
    _assert_identical(model, loaded)
    # and a second save of the loaded model writes byte-identical weights
    loaded.save_pretrained(tmp_path / "again")
    assert (tmp_path / "ckpt" / "model.safetensors").read_bytes() == (
        tmp_path / "again" / "model.safetensors"
    ).read_bytes()


def test_round_trip_with_tokenizer(make_model, tmp_path, bpe_tokenizer):
    model = HookedMomentumTransformer(
        make_model(d_vocab=bpe_tokenizer.get_vocab_size(), n_ctx=32).cfg, tokenizer=bpe_tokenizer
    ).eval()
    model.save_pretrained(str(tmp_path / "tok"))  # str paths work too
    assert (tmp_path / "tok" / "tokenizer.json").is_file()
    loaded = HookedMomentumTransformer.from_pretrained(str(tmp_path / "tok"), device="cpu")
    _assert_identical(model, loaded)
    assert loaded.tokenizer is not None
    text = "hello import world ✓"
    assert torch.equal(loaded.to_tokens(text), model.to_tokens(text))
    assert loaded.to_string(loaded.to_tokens(text, prepend_bos=False)[0]) == text
    with torch.no_grad():
        assert torch.equal(loaded(text), model(text))


@pytest.mark.parametrize("name", ["plain", "smeared_key", "learnable_gamma"])
def test_packed_round_trip_in_one_file(make_model, tmp_path, name, bpe_tokenizer):
    vocab = bpe_tokenizer.get_vocab_size()
    model = _distinct_momentum(make_model(**ROUND_TRIPS[name], d_vocab=vocab))
    path = ckpt.pack_checkpoint(tmp_path / "m.safetensors", model)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    loaded = HookedMomentumTransformer.from_pretrained(path)
    assert loaded.tokenizer is None
    _assert_identical(model, loaded)
    # bf16 packing: the loaded model is the original with every weight rounded to bf16
    packed = ckpt.pack_checkpoint(tmp_path / "b.safetensors", model, bpe_tokenizer, torch.bfloat16)
    cfg, tensors, tokenizer = ckpt.unpack_checkpoint(packed)
    assert cfg.to_dict() == model.cfg.to_dict()
    buffers = dict(model.named_buffers())
    assert all(t.dtype == torch.bfloat16 for n, t in tensors.items() if n not in buffers)
    assert tokenizer.to_str() == bpe_tokenizer.to_str()
    assert packed.stat().st_size < path.stat().st_size
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(param.bfloat16())
    with pytest.warns(UserWarning, match=r"precision change: .*\(bfloat16 -> float32\)"):
        _assert_identical(model, HookedMomentumTransformer.from_pretrained(str(packed)))


def test_bf16_packing_keeps_buffers_exact(make_model, tmp_path):
    # a fixed γ of 0.707 is a buffer: bf16 would round it to 0.70703125
    model = make_model(gamma=0.707)
    buffers = dict(model.named_buffers())
    assert "blocks.0.attn.gamma" in buffers and torch.bfloat16 not in {
        b.dtype for b in buffers.values()
    }
    packed = ckpt.pack_checkpoint(tmp_path / "b.safetensors", model, dtype=torch.bfloat16)
    _, tensors, _ = ckpt.unpack_checkpoint(packed)
    for name, t in model.state_dict().items():
        if name in buffers:
            assert tensors[name].dtype == t.dtype and torch.equal(tensors[name], t), name
        else:
            assert tensors[name].dtype == torch.bfloat16, name
    with pytest.warns(UserWarning, match="precision change"):
        loaded = HookedMomentumTransformer.from_pretrained(packed)
    expected = torch.full((model.cfg.n_heads,), 0.707, dtype=loaded.blocks[0].attn.gamma.dtype)
    assert float(torch.tensor(0.707).bfloat16()) != 0.707  # the rounding this test guards against
    for block in loaded.blocks:
        assert torch.equal(block.attn.gamma, expected)


def test_unpacking_a_foreign_safetensors_file(make_model, tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path / "dir")  # a checkpoint directory's weights file alone
    with pytest.raises(CheckpointError, match="not a packed checkpoint"):
        HookedMomentumTransformer.from_pretrained(tmp_path / "dir" / "model.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"0123456789")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        ckpt.unpack_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match=r"name ends in \.safetensors"):
        ckpt.pack_checkpoint(tmp_path / "m.bin", model)


def test_set_gamma_survives_a_round_trip(make_model, tmp_path):
    model = make_model(gamma=1.0)
    model.set_gamma(0.25, layer=1, head=2)
    model.save_pretrained(tmp_path / "g")
    loaded = HookedMomentumTransformer.from_pretrained(tmp_path / "g")
    assert torch.equal(loaded.gamma_q, model.gamma_q)
    # the config states the edited heads, so the γ check holds them to it
    meta = json.loads((tmp_path / "g" / "config.json").read_text())
    assert meta["gamma_per_head"] == [[1.0] * 4, [1.0, 1.0, 0.25, 1.0]]
    packed = ckpt.pack_checkpoint(tmp_path / "g.safetensors", model)
    assert torch.equal(HookedMomentumTransformer.from_pretrained(packed).gamma_q, model.gamma_q)
    _rewrite_config(tmp_path / "g", lambda m: m["gamma_per_head"][1].__setitem__(2, 0.5))
    with pytest.raises(
        CheckpointError,
        match=r"blocks\.1\.attn\.gamma holds the fixed γ "
        r"\[1\.0, 1\.0, 0\.25, 1\.0\], but its config records gamma_per_head",
    ):
        _load(tmp_path / "g")


def test_bundled_checkpoint_by_name(make_model, tmp_path, monkeypatch):
    monkeypatch.setenv("MOMENTUM_INTERP_ASSETS", str(tmp_path))
    model = make_model()
    model.save_pretrained(tmp_path / "tiny-1l")
    (tmp_path / "not-a-checkpoint").mkdir()
    assert bundled_names() == ["tiny-1l"]
    _assert_identical(model, HookedMomentumTransformer.from_pretrained("tiny-1l"))
    with pytest.raises(CheckpointError, match=r"No checkpoint directory at 'nope'.*tiny-1l"):
        HookedMomentumTransformer.from_pretrained("nope")


def test_no_bundled_checkpoints_says_where_they_come_from(tmp_path, monkeypatch):
    """A wheel install has no assets/: the error names the fix."""
    monkeypatch.setenv("MOMENTUM_INTERP_ASSETS", str(tmp_path / "missing"))
    with pytest.raises(CheckpointError, match=r"pip install -e \.`, or set MOMENTUM_INTERP_ASSETS"):
        HookedMomentumTransformer.from_pretrained("induction-1l-momentum")


# ---------------------------------------------------------------------------- bad inputs


@pytest.fixture
def saved(make_model, tmp_path) -> Path:
    directory = tmp_path / "ckpt"
    make_model().save_pretrained(directory)
    return directory


def _rewrite_config(directory: Path, edit) -> None:
    meta = json.loads((directory / "config.json").read_text())
    edit(meta)
    (directory / "config.json").write_text(json.dumps(meta))


def _load(directory):
    return HookedMomentumTransformer.from_pretrained(directory)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint directory"):
        _load(tmp_path / "does-not-exist")


def test_missing_config(saved):
    (saved / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"has no config\.json.*save_pretrained"):
        _load(saved)


@pytest.mark.parametrize("garbage", [b"\x80\xff\x00\x13garbage", b"{not json", b""])
def test_corrupt_config(saved, garbage):
    (saved / "config.json").write_bytes(garbage)
    with pytest.raises(CheckpointError, match=r"config\.json is corrupt"):
        _load(saved)


@pytest.mark.parametrize("content", ["[]", '{"config": {}}', '{"format_version": "1"}'])
def test_config_without_format_version(saved, content):
    (saved / "config.json").write_text(content)
    with pytest.raises(CheckpointError, match="no format_version"):
        _load(saved)


def test_missing_weights(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        _load(saved)


@pytest.mark.parametrize("keep", [0, 7, 100, -1])
def test_truncated_weights(saved, keep):
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(CheckpointError, match="does not match the checksum"):
        _load(saved)


def test_flipped_byte_in_weights(saved):
    data = bytearray((saved / "model.safetensors").read_bytes())
    data[-3] ^= 0x01  # a silent bit flip inside a tensor, the header still parses
    (saved / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        _load(saved)


def test_unreadable_weights_with_matching_checksum(saved):
    garbage = b"this is not a safetensors file"
    (saved / "model.safetensors").write_bytes(garbage)
    _rewrite_config(saved, lambda m: m.update(weights_sha256=hashlib.sha256(garbage).hexdigest()))
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        _load(saved)


def test_future_format_version(saved):
    _rewrite_config(saved, lambda m: m.update(format_version=ckpt.FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match="newer than this momentum_interp.*upgrade"):
        _load(saved)


def test_config_that_does_not_match_the_weights(saved):
    def edit(meta):
        meta["config"]["d_head"] = 8  # n_heads stays 4: W_Q etc. now have the wrong shape

    _rewrite_config(saved, edit)  # the weights (and so the checksum) are untouched
    with pytest.raises(CheckpointError, match=r"does not match its weights.*blocks\.0\.attn\.W_Q"):
        _load(saved)


def test_config_with_a_module_the_weights_lack(saved):
    _rewrite_config(saved, lambda m: m["config"].update(smeared_key=True, shear="none"))
    with pytest.raises(CheckpointError, match=r"does not match.*missing.*attn\.smear_logit"):
        _load(saved)


def test_unknown_config_keys(saved):
    _rewrite_config(saved, lambda m: m["config"].update(bogus_option=3))
    with pytest.raises(CheckpointError, match=r"invalid model config.*bogus_option"):
        _load(saved)


def test_invalid_config_values(saved):
    _rewrite_config(saved, lambda m: m["config"].update(shear="qq"))
    with pytest.raises(CheckpointError, match=r"invalid model config.*shear='qq'"):
        _load(saved)


def test_config_section_missing(saved):
    _rewrite_config(saved, lambda m: m.pop("config"))
    with pytest.raises(CheckpointError, match="invalid model config"):
        _load(saved)


def _rewrite_weights(directory: Path, edit) -> None:
    """Edit the tensors and commit them with a matching checksum, as another writer might."""
    tensors = load_file(str(directory / "model.safetensors"))
    edit(tensors)
    data = save_safetensors(tensors)
    (directory / "model.safetensors").write_bytes(data)
    _rewrite_config(directory, lambda m: m.update(weights_sha256=hashlib.sha256(data).hexdigest()))


def test_config_gamma_that_the_weights_do_not_hold(saved):
    _rewrite_config(saved, lambda m: m["config"].update(gamma=2.0))  # weights keep γ = 1
    with pytest.raises(
        CheckpointError,
        match=r"blocks\.0\.attn\.gamma holds the fixed γ "
        r"\[1\.0, 1\.0, 1\.0, 1\.0\], but its config says gamma = 2\.0",
    ):
        _load(saved)


def test_integer_tensors_are_refused(saved):
    _rewrite_weights(saved, lambda t: t.update({"blocks.0.attn.gamma": torch.full((4,), 100)}))
    with pytest.raises(CheckpointError, match=r"tensor blocks\.0\.attn\.gamma is int64"):
        _load(saved)


def test_a_precision_change_is_stated(saved):
    _rewrite_weights(saved, lambda t: t.update({k: v.half() for k, v in t.items()}))
    stored = load_file(str(saved / "model.safetensors"))
    with pytest.warns(UserWarning, match=r"precision change: \d+ tensor\(s\).*float16 -> float32"):
        loaded = _load(saved)
    for name, tensor in loaded.state_dict().items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, stored[name].float()), name


def test_an_option_parameter_without_its_option_is_explained(make_model, tmp_path):
    make_model(learned_temperature=True).save_pretrained(tmp_path / "t")
    _rewrite_config(tmp_path / "t", lambda m: m["config"].update(learned_temperature=False))
    with pytest.raises(
        CheckpointError,
        match=r"unexpected.*The weights hold log_temperature, "
        r"but the config has learned_temperature = False",
    ):
        _load(tmp_path / "t")


@pytest.mark.parametrize("where", ["tensor", "config"])
def test_a_flipped_bit_in_a_packed_file_fails_its_checksum(make_model, tmp_path, where):
    path = ckpt.pack_checkpoint(tmp_path / "m.safetensors", make_model())
    data = bytearray(path.read_bytes())
    at = len(data) - 3 if where == "tensor" else data.index(b'\\"gamma\\": 1.0') + 11
    data[at] ^= 0x02  # a tensor byte, or the config's gamma 1.0 -> 3.0: both still parse
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the checksum in its metadata"):
        _load(path)


def test_a_packed_file_without_a_checksum_loads_with_a_note(make_model, tmp_path):
    model = make_model()
    path = ckpt.pack_checkpoint(tmp_path / "m.safetensors", model)
    with safe_open(path, framework="pt") as f:
        metadata = {k: v for k, v in f.metadata().items() if k != "sha256"}
    foreign = tmp_path / "foreign.safetensors"  # as another tool would write it
    foreign.write_bytes(save_safetensors(load_file(str(path)), metadata=metadata))
    with pytest.warns(UserWarning, match="could not be verified: it carries no sha256"):
        _assert_identical(model, _load(foreign))


def test_missing_tokenizer(make_model, tmp_path, bpe_tokenizer):
    cfg = make_model(d_vocab=bpe_tokenizer.get_vocab_size()).cfg
    HookedMomentumTransformer(cfg, tokenizer=bpe_tokenizer).save_pretrained(tmp_path / "t")
    (tmp_path / "t" / "tokenizer.json").write_text("{broken")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json is missing or corrupt"):
        _load(tmp_path / "t")
    (tmp_path / "t" / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match=r"tokenizer\.json is missing or corrupt"):
        _load(tmp_path / "t")


# ---------------------------------------------------------------------- atomic overwrite


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith((".tmp", ".staged")))


def _load_is_old_or_new(directory, old, new):
    """What a failed save left must load as exactly one of the two models (tokenizer included)."""
    loaded = _load(directory)
    for candidate, label in ((old, "old"), (new, "new")):
        sd = candidate.state_dict()
        if all(torch.equal(t, sd[n]) for n, t in loaded.state_dict().items()):
            _assert_identical(candidate, loaded)
            if candidate.tokenizer is None:
                assert loaded.tokenizer is None, label
            else:
                assert loaded.tokenizer.to_str() == candidate.tokenizer.to_str(), label
            return label
    raise AssertionError("a failed save left a checkpoint that loads as neither model")


# A training run's directory holds the final model beside files that are not the checkpoint's.
UNRELATED = {
    "run_config.json": b'{"lr": 0.001}\n',
    "metrics.json": b'{"loss": 1.5}\n',
    "card.md": b"# tiny\n",
    "checkpoints/LATEST": b"step-0000010",
}


def _add_unrelated(directory: Path) -> None:
    for name, data in UNRELATED.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)


def _assert_unrelated_intact(directory: Path) -> None:
    for name, data in UNRELATED.items():
        assert (directory / name).read_bytes() == data, name


def test_successful_overwrite_leaves_no_temp_files(make_model, tmp_path):
    old, new = make_model(seed=1), make_model(seed=2)
    old.save_pretrained(tmp_path)
    _add_unrelated(tmp_path)
    new.save_pretrained(tmp_path)
    assert _leftovers(tmp_path) == []
    _assert_identical(new, _load(tmp_path))
    _assert_unrelated_intact(tmp_path)
    names = {"config.json", "model.safetensors", *(name.split("/")[0] for name in UNRELATED)}
    assert {p.name for p in tmp_path.iterdir()} == names


def test_crash_before_the_config_is_written_keeps_the_old_checkpoint(
    make_model, tmp_path, monkeypatch
):
    """The config writer dies while overwriting: the old checkpoint must still load, bit-exact
    (it used to be left with the new weights and the old checksum, loadable by nothing)."""
    old, new = make_model(seed=1), make_model(seed=2)
    old.save_pretrained(tmp_path)
    _add_unrelated(tmp_path)

    def crash(path, obj):
        raise OSError("killed (simulated)")

    monkeypatch.setattr(ckpt, "atomic_write_json", crash)
    with pytest.raises(OSError, match="simulated"):
        new.save_pretrained(tmp_path)
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []
    assert _load_is_old_or_new(tmp_path, old, new) == "old"
    _assert_unrelated_intact(tmp_path)
    new.save_pretrained(tmp_path)  # a normal re-save works
    _assert_identical(new, _load(tmp_path))
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("where", "expected"),
    [("fsync", "old"), ("config.json", "old"), ("model.safetensors", "new")],
)
def test_crash_in_a_file_operation_leaves_a_whole_checkpoint(
    make_model, tmp_path, monkeypatch, where, expected
):
    """Before the config.json rename (the commit) the old checkpoint stays; after it, the new one
    loads even though its weights still sit under their staged name."""
    old, new = make_model(seed=1), make_model(seed=2)
    old.save_pretrained(tmp_path)
    real_replace = mi_io.os.replace

    def crash_fsync(fd):
        raise OSError("disk full (simulated)")

    def crash_rename(src, dst):
        if Path(dst).name == where:
            raise OSError("power cut (simulated)")
        real_replace(src, dst)

    if where == "fsync":  # dies before anything is renamed
        monkeypatch.setattr(mi_io.os, "fsync", crash_fsync)
    else:
        monkeypatch.setattr(mi_io.os, "replace", crash_rename)
    with pytest.raises(OSError, match="simulated"):
        new.save_pretrained(tmp_path)
    monkeypatch.undo()
    assert _load_is_old_or_new(tmp_path, old, new) == expected
    assert not [name for name in _leftovers(tmp_path) if name.endswith(".tmp")]
    if expected == "old":
        assert _leftovers(tmp_path) == []
    new.save_pretrained(tmp_path)  # re-saving completes it and removes every leftover
    _assert_identical(new, _load(tmp_path))
    assert _leftovers(tmp_path) == []


TOKENIZER_CASES = {"none": (False, False), "added": (False, True), "dropped": (True, False)}


@pytest.mark.parametrize("case", TOKENIZER_CASES)
def test_a_kill_at_any_step_of_an_overwrite_leaves_the_old_or_the_new_checkpoint(
    make_model, tmp_path, monkeypatch, bpe_tokenizer, case
):
    """Fail each file-system step of an overwrite in turn. Both the directory as the kill left it
    (copied at that instant, before any clean-up) and as the failed save left it must load as the
    old or the new checkpoint, never refuse; unrelated files are never touched."""
    old_tok, new_tok = TOKENIZER_CASES[case]
    d_vocab = bpe_tokenizer.get_vocab_size()
    models = []
    for seed, with_tokenizer in ((1, old_tok), (2, new_tok)):
        weights = make_model(seed=seed, d_vocab=d_vocab)
        model = HookedMomentumTransformer(
            weights.cfg, tokenizer=bpe_tokenizer if with_tokenizer else None
        )
        model.load_state_dict(weights.state_dict())
        models.append(model.eval())
    old, new = models
    os_module = mi_io.os
    ops = {name: getattr(os_module, name) for name in ("replace", "fsync", "unlink")}

    def save_failing_at(step: int | None, directory: Path, snapshot: Path) -> list[str]:
        calls = []

        def wrap(name):
            def op(*args, **kwargs):
                calls.append(name)
                if len(calls) - 1 == step:
                    shutil.copytree(directory, snapshot)  # what a SIGKILL here would leave
                    raise OSError(f"killed at {name} (simulated)")
                return ops[name](*args, **kwargs)

            return op

        for name in ops:
            monkeypatch.setattr(os_module, name, wrap(name))
        try:
            new.save_pretrained(directory)
        finally:
            monkeypatch.undo()
        return calls

    steps = len(save_failing_at(None, tmp_path / "clean", tmp_path / "unused"))
    outcomes = []
    for step in range(steps):
        directory, snapshot = tmp_path / f"run{step}", tmp_path / f"killed{step}"
        old.save_pretrained(directory)
        _add_unrelated(directory)
        with pytest.raises(OSError, match="simulated"):
            save_failing_at(step, directory, snapshot)
        killed = _load_is_old_or_new(snapshot, old, new)
        failed = _load_is_old_or_new(directory, old, new)
        assert killed == failed  # the clean-up after a failure never changes which one loads
        outcomes.append(failed)
        for state in (snapshot, directory):
            _assert_unrelated_intact(state)
        new.save_pretrained(directory)  # re-saving after any failure gives the new checkpoint
        _load_is_old_or_new(directory, new, new)
        assert _leftovers(directory) == []
        names = {"config.json", "model.safetensors", *(["tokenizer.json"] if new_tok else [])}
        names |= {name.split("/")[0] for name in UNRELATED}
        assert {p.name for p in directory.iterdir()} == names
    assert "old" in outcomes and "new" in outcomes  # both sides of the commit point were hit


# ------------------------------------------------------------------------- JSON and umask


def _refuse_constant(name):
    raise AssertionError(f"invalid JSON constant {name} in the file")


def test_atomic_write_json_writes_non_finite_floats_as_null(tmp_path):
    path = tmp_path / "scores.json"
    mi_io.atomic_write_json(path, {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads(path.read_text(), parse_constant=_refuse_constant) == {
        "a": None,
        "b": [1.0, None],
    }


def test_atomic_write_json_handles_nested_numpy_scalars(tmp_path):
    path = tmp_path / "nested.json"
    obj = {
        "diag": (np.float32("nan"), np.float64(0.5), -np.inf),
        "rows": [{"x": np.float64("-inf"), "n": np.int64(3), "ok": np.bool_(True)}],
        "fine": 2.5,
    }
    mi_io.atomic_write_json(path, obj)
    assert json.loads(path.read_text(), parse_constant=_refuse_constant) == {
        "diag": [None, 0.5, None],
        "rows": [{"x": None, "n": 3, "ok": True}],
        "fine": 2.5,
    }


def test_atomic_write_json_fails_loudly_on_what_it_cannot_clean(tmp_path):
    path = tmp_path / "keys.json"
    with pytest.raises(ValueError, match="not JSON compliant"):
        mi_io.atomic_write_json(path, {float("nan"): 1})  # a NaN key would be written as NaN
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_the_process_umask_alone(tmp_path, monkeypatch):
    mask = os.umask(0o022)
    os.umask(mask)

    def no_umask(_):
        raise AssertionError("atomic_write_bytes changed the process umask")

    monkeypatch.setattr(mi_io.os, "umask", no_umask)
    mi_io.atomic_write_bytes(tmp_path / "f.bin", b"x")
    mi_io.atomic_write_json(tmp_path / "f.json", {"a": 1})
    monkeypatch.undo()
    for name in ("f.bin", "f.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask
