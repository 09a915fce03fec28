"""Turning user input into validated token tensors, with errors that say how to fix the input."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase


def check_tokens(tokens: torch.Tensor, d_vocab: int, n_ctx: int | None) -> torch.Tensor:
    """Validate a token tensor and return it as `[batch, pos]` int64 (any length when `n_ctx` is
    None)."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(
            f"Expected a tensor of token ids, text, or a list of ids; got {type(tokens).__name__}."
        )
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(
            f"Token ids must be an integer tensor, got dtype {tokens.dtype}; convert with .long()."
        )
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2:
        raise ValueError(
            f"Tokens must have shape [pos] or [batch, pos], got {tuple(tokens.shape)}."
        )
    if tokens.shape[1] == 0 or tokens.shape[0] == 0:
        raise ValueError(
            f"Tokens are empty (shape {tuple(tokens.shape)}); pass at least one token."
        )
    if n_ctx is not None and tokens.shape[1] > n_ctx:
        raise ValueError(
            f"Sequence length {tokens.shape[1]} exceeds the model's context n_ctx={n_ctx}; "
            f"truncate to at most {n_ctx} tokens (e.g. tokens[:, -{n_ctx}:])."
        )
    if torch.compiler.is_compiling():
        return tokens.long()
    if tokens.device.type != "cpu":  # no host-device sync: the device raises asynchronously
        in_vocab = ((tokens >= 0) & (tokens < d_vocab)).all()
        torch._assert_async(
            in_vocab,
            f"Token ids outside the vocabulary [0, {d_vocab}); check the tokenizer matches this "
            "model (validate the tokens on the CPU to see which id and where).",
        )
    else:
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= d_vocab:
            bad = low if low < 0 else high
            where = (tokens == bad).nonzero()[0].tolist()
            raise ValueError(
                f"Token id {bad} at [batch, pos]={where} is outside the vocabulary [0, {d_vocab}); "
                "check the tokenizer matches this model."
            )
    return tokens.long()


def parse_token_ids(text: str) -> list[int]:
    """Parse a space-separated string of integer ids, the text form of integer-token models."""
    try:
        return [int(piece) for piece in text.split()]
    except ValueError:
        raise ValueError(
            f"This model has no tokenizer, so text must be space-separated token ids like '3 17 5'; "
            f"got {text[:40]!r}."
        ) from None


def encode(
    inputs: str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]],
    tokenizer: PreTrainedTokenizerBase | None,
    prepend_bos: bool,
    padding_side: str | None = None,
    max_len: int | None = None,
) -> list[list[int]]:
    """Encode text or id lists into one list of ids per sequence (all the same length: with a
    tokenizer, shorter texts are padded with its pad token on `padding_side`, as in TransformerLens).
    Texts longer than `max_len` ids (BOS included) are cut to it on the tokenizer's
    `truncation_side` (the end by default), as TransformerLens's `to_tokens(truncate=True)` does."""
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, Sequence):
        raise TypeError(f"Expected text, a list of texts or a list of token ids; got {inputs!r}.")
    if len(inputs) == 0:
        raise ValueError("The input is empty (an empty list); pass at least one token.")
    if all(isinstance(i, int) for i in inputs):
        inputs = [list(inputs)]
    sequences = []
    for item in inputs:
        if isinstance(item, str):
            ids = _truncate(_encode_text(item, tokenizer, prepend_bos), tokenizer, max_len)
        elif isinstance(item, Sequence) and all(isinstance(i, int) for i in item):
            ids = list(item)
        else:
            raise TypeError(f"Cannot read {item!r} as text or a list of integer token ids.")
        sequences.append(ids)
    lengths = {len(ids) for ids in sequences}
    if len(lengths) > 1 and tokenizer is not None and all(isinstance(i, str) for i in inputs):
        return _pad(sequences, tokenizer, padding_side or tokenizer.padding_side)
    if len(lengths) > 1:
        raise ValueError(
            f"Sequences have different lengths {sorted(lengths)}; pass them one at a time or pad them."
        )
    return sequences


def _pad(
    sequences: list[list[int]], tokenizer: PreTrainedTokenizerBase, padding_side: str
) -> list[list[int]]:
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}.")
    width = max(len(ids) for ids in sequences)
    pads = [[tokenizer.pad_token_id] * (width - len(ids)) for ids in sequences]
    if padding_side == "right":
        return [ids + pad for ids, pad in zip(sequences, pads, strict=True)]
    return [pad + ids for ids, pad in zip(sequences, pads, strict=True)]


def _truncate(
    ids: list[int], tokenizer: PreTrainedTokenizerBase | None, max_len: int | None
) -> list[int]:
    if max_len is None or len(ids) <= max_len:
        return ids
    from_left = getattr(tokenizer, "truncation_side", "right") == "left"
    return ids[-max_len:] if from_left else ids[:max_len]


def _encode_text(
    text: str, tokenizer: PreTrainedTokenizerBase | None, prepend_bos: bool
) -> list[int]:
    if tokenizer is None:
        return parse_token_ids(text)
    ids = tokenizer.encode(text, add_special_tokens=False)
    bos = tokenizer.bos_token_id
    return [bos, *ids] if prepend_bos and bos is not None else ids


def decode(ids: Sequence[int], tokenizer: PreTrainedTokenizerBase | None) -> str:
    """Ids back to text: the tokenizer's decoding, or space-separated ids without one."""
    if tokenizer is None:
        return " ".join(str(i) for i in ids)
    return tokenizer.decode(
        list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
    )


def str_tokens(ids: Sequence[int], tokenizer: PreTrainedTokenizerBase | None) -> list[str]:
    """One display string per token, for attention-pattern plots."""
    if tokenizer is None:
        return [str(i) for i in ids]
    return [decode([i], tokenizer) for i in ids]
