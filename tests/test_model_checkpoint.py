"""save_pretrained / from_pretrained: bit-exact round trips and loud, helpful failures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import momentum_interp.io as mi_io
import momentum_interp.model.checkpoint as ckpt
from momentum_interp import CheckpointError, HookedMomentumTransformer, bundled_names


def _tokens(cfg, seed=2):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.d_vocab, (2, cfg.n_ctx), generator=gen)


def _tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=280,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["hello world, hello there", "import os\nimport sys\n"] * 4, trainer)
    return tok


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


def test_round_trip_with_tokenizer(make_model, tmp_path):
    tokenizer = _tokenizer()
    model = HookedMomentumTransformer(
        make_model(d_vocab=tokenizer.get_vocab_size(), n_ctx=32).cfg, tokenizer=tokenizer
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


def test_set_gamma_survives_a_round_trip(make_model, tmp_path):
    model = make_model(gamma=1.0)
    model.set_gamma(0.25, layer=1, head=2)
    model.save_pretrained(tmp_path / "g")
    loaded = HookedMomentumTransformer.from_pretrained(tmp_path / "g")
    assert torch.equal(loaded.gamma_q, model.gamma_q)


def test_bundled_checkpoint_by_name(make_model, tmp_path, monkeypatch):
    monkeypatch.setenv("MOMENTUM_INTERP_ASSETS", str(tmp_path))
    model = make_model()
    model.save_pretrained(tmp_path / "tiny-1l")
    (tmp_path / "not-a-checkpoint").mkdir()
    assert bundled_names() == ["tiny-1l"]
    _assert_identical(model, HookedMomentumTransformer.from_pretrained("tiny-1l"))
    with pytest.raises(CheckpointError, match=r"No checkpoint directory at 'nope'.*tiny-1l"):
        HookedMomentumTransformer.from_pretrained("nope")


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


def test_missing_tokenizer(make_model, tmp_path):
    tokenizer = _tokenizer()
    cfg = make_model(d_vocab=tokenizer.get_vocab_size()).cfg
    HookedMomentumTransformer(cfg, tokenizer=tokenizer).save_pretrained(tmp_path / "t")
    (tmp_path / "t" / "tokenizer.json").write_text("{broken")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json is missing or corrupt"):
        _load(tmp_path / "t")
    (tmp_path / "t" / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match=r"tokenizer\.json is missing or corrupt"):
        _load(tmp_path / "t")


# ---------------------------------------------------------------------- atomic overwrite


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _load_is_old_new_or_refused(directory, old, new):
    """Whatever a failed save left must load as exactly one of the two models, or be refused."""
    try:
        loaded = _load(directory)
    except CheckpointError as e:
        assert "checksum" in str(e) or "does not match" in str(e)
        return "refused"
    for candidate, label in ((old, "old"), (new, "new")):
        sd = candidate.state_dict()
        if all(torch.equal(t, sd[n]) for n, t in loaded.state_dict().items()):
            _assert_identical(candidate, loaded)
            return label
    raise AssertionError("a failed save left a checkpoint that loads as neither model")


def test_successful_overwrite_leaves_no_temp_files(make_model, tmp_path):
    old, new = make_model(seed=1), make_model(seed=2)
    old.save_pretrained(tmp_path)
    new.save_pretrained(tmp_path)
    assert _leftovers(tmp_path) == []
    _assert_identical(new, _load(tmp_path))


@pytest.mark.parametrize("where", ["fsync", "rename_weights"])
def test_crash_while_writing_weights_keeps_the_old_checkpoint(
    make_model, tmp_path, monkeypatch, where
):
    old, new = make_model(seed=1), make_model(seed=2)
    old.save_pretrained(tmp_path)
    real_replace = mi_io.os.replace

    def crash_fsync(fd):
        raise OSError("disk full (simulated)")

    def crash_weights_rename(src, dst):
        if str(dst).endswith("model.safetensors"):
            raise OSError("power cut (simulated)")
        real_replace(src, dst)

    if where == "fsync":  # dies before the temp file is renamed
        monkeypatch.setattr(mi_io.os, "fsync", crash_fsync)
    else:
        monkeypatch.setattr(mi_io.os, "replace", crash_weights_rename)
    with pytest.raises(OSError, match="simulated"):
        new.save_pretrained(tmp_path)
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []
    _assert_identical(old, _load(tmp_path))


def test_crash_between_weights_and_config(make_model, tmp_path, monkeypatch):
    """New weights renamed into place, then the config write dies: must not load silently."""
    old, new = make_model(seed=1), make_model(seed=2)
    old.save_pretrained(tmp_path)

    def crash(path, obj):
        raise OSError("killed (simulated)")

    monkeypatch.setattr(ckpt, "atomic_write_json", crash)
    with pytest.raises(OSError, match="simulated"):
        new.save_pretrained(tmp_path)
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []
    assert _load_is_old_new_or_refused(tmp_path, old, new) in ("old", "new", "refused")
    # re-saving repairs it
    new.save_pretrained(tmp_path)
    _assert_identical(new, _load(tmp_path))


def test_crash_while_renaming_config(make_model, tmp_path, monkeypatch):
    old, new = make_model(seed=1), make_model(seed=2)
    old.save_pretrained(tmp_path)
    real_replace = mi_io.os.replace

    def replace(src, dst):
        if str(dst).endswith("config.json"):
            raise OSError("power cut (simulated)")
        real_replace(src, dst)

    monkeypatch.setattr(mi_io.os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        new.save_pretrained(tmp_path)
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []
    assert _load_is_old_new_or_refused(tmp_path, old, new) in ("old", "new", "refused")
