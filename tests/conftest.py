"""Shared fixtures: tiny randomised models and an independent rotary reference."""

from __future__ import annotations

import math

import pytest
import torch
from tokenizers import Tokenizer

from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.data.corpus import train_bpe_tokenizer

# Tiny tensors: a second intra-op thread only spins against other processes on the shared cores
# (measured: the reference tests take 49 s with torch's default threads, 4 s with one).
torch.set_num_threads(1)

TINY = dict(d_model=16, d_head=4, n_layers=2, n_ctx=16, d_vocab=23, d_mlp=24, device="cpu")


def randomize_(model: HookedMomentumTransformer, seed: int = 0) -> HookedMomentumTransformer:
    """Give every parameter (biases and norm weights included) a random, non-trivial value.

    `init_weights` zeroes biases and sets norm gains to 1; a reference test passing with those
    values would not notice a forgotten bias or gain. Gamma and smear logits are left alone: the
    tests set them explicitly.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            leaf = name.split(".")[-1]
            if leaf in ("gamma", "smear_logit"):
                continue
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float64)
            if leaf.startswith("W_"):
                value = noise * (0.8 / math.sqrt(model.cfg.d_model))
            elif leaf == "w":  # norm gain
                value = 1.0 + 0.2 * noise
            else:  # biases, norm offsets
                value = 0.2 * noise
            param.copy_(value.to(param.dtype))
    return model


@pytest.fixture(scope="session")
def make_model():
    """Factory: `make_model(seed=0, randomize=True, **config_overrides)` → eval-mode tiny model."""

    def factory(seed: int = 0, randomize: bool = True, **overrides) -> HookedMomentumTransformer:
        cfg = MomentumConfig(**{**TINY, "seed": seed, **overrides})
        model = HookedMomentumTransformer(cfg).eval()
        return randomize_(model, seed) if randomize else model

    return factory


def rope_reference(x: torch.Tensor, rotary_dim: int, base: float = 10000.0) -> torch.Tensor:
    """GPT-NeoX rotary, written out pair by pair: channel i pairs with i + rotary_dim/2.

    `x: [batch, pos, head, d_head]`; position t rotates pair i by `t · base^(−2i/rotary_dim)`.
    Computed in float64 and returned in x's dtype.
    """
    out = x.detach().to(torch.float64).clone()
    half = rotary_dim // 2
    t = torch.arange(x.shape[1], dtype=torch.float64)[None, :, None]
    for i in range(half):
        theta = t * base ** (-2.0 * i / rotary_dim)
        a = x[..., i].to(torch.float64)
        b = x[..., i + half].to(torch.float64)
        out[..., i] = a * theta.cos() - b * theta.sin()
        out[..., i + half] = b * theta.cos() + a * theta.sin()
    return out.to(x.dtype)


@pytest.fixture(scope="session")
def rope():
    """The independent rotary reference, `rope(x, rotary_dim, base=10000.0)`."""
    return rope_reference


@pytest.fixture(scope="session")
def bpe_tokenizer(tmp_path_factory) -> Tokenizer:
    """A small byte-level BPE (at most 512 ids), trained by the package's own trainer."""
    corpus = tmp_path_factory.mktemp("bpe") / "corpus.txt"
    lines = [
        "def foo(x):\n    return x + 1\n",
        "the cat sat on the mat, the cat sat on the hat",
        "for i in range(10): print(i)",
        "import os\nimport sys\nhello world, hello there",
    ]
    corpus.write_text("\n".join(lines * 3), encoding="utf-8")
    return train_bpe_tokenizer([corpus], vocab_size=512, min_frequency=1)


@pytest.fixture(scope="session")
def gpt2_pair(tmp_path_factory, bpe_tokenizer):
    """A random GPT-2 (`transformers`, built here: nothing downloaded) with non-trivial biases and
    LN gains and the BPE tokenizer, saved to a directory, and loaded both ways:
    `(hf_model, directory, ours, bridge)` with `ours = from_hf(directory)` (unprocessed) and
    TransformerLens's `TransformerBridge` on the same weights and tokenizer, in compatibility
    mode. Shared across tests: copy a model before changing it."""
    import copy

    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2, n_embd=64, n_head=4, vocab_size=bpe_tokenizer.get_vocab_size(), n_positions=64
    )
    hf_model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # GPT-2's init zeroes biases, sets LN gains to 1 and makes attention
        for name, param in hf_model.named_parameters():  # near-uniform: make them all real
            if "ln" in name or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
            elif param.ndim == 2:
                param.mul_(4.0)
    directory = tmp_path_factory.mktemp("gpt2")
    hf_model.save_pretrained(directory)
    bos = "<|endoftext|>"
    PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(bpe_tokenizer.to_str()),
        bos_token=bos,
        eos_token=bos,
        pad_token=bos,
    ).save_pretrained(directory)
    ours = HookedMomentumTransformer.from_hf(directory)
    bridge = build_bridge_from_module(
        copy.deepcopy(hf_model),
        "GPT2LMHeadModel",
        hf_config=config,
        tokenizer=PreTrainedTokenizerFast.from_pretrained(directory),
    )
    bridge.enable_compatibility_mode()
    return hf_model, directory, ours, bridge


def tiny_history_sweep(tmp_path, steps: int, seeds: list[int]):
    """`configs/tiny/formation.toml` as a two-arm sweep ("mom": its q/k shear, "plain": none)
    trained with history: `(out, runs)`, the sweep's --out and --runs-dir."""
    from pathlib import Path

    from momentum_interp.cli import main

    config = (Path(__file__).resolve().parents[1] / "configs/tiny/formation.toml").read_text()
    spec = tmp_path / "spec.toml"
    spec.write_text(
        config.replace("steps = 60", f"steps = {steps}").replace("seed = 0\n", "")
        + f'\n[grid]\n"train.seed" = {seeds}\n[[variants]]\nlabel = "mom"\n'
        + '[[variants]]\nlabel = "plain"\n"model.shear" = "none"\n'
    )
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["sweep", str(spec), "--out", str(out), "--runs-dir", str(runs), "--quiet"]
    assert main([*argv, "--workers", "0"]) == 0
    return out, runs
