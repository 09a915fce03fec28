"""A Hugging Face `PreTrainedTokenizerFast` around our saved byte-level BPE, so TransformerLens
utilities that read `padding_side`, `bos_token_id`, `pad_token_id` or `decode` work on text models."""

from __future__ import annotations

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

BOS_TOKEN = "<|endoftext|>"


class MomentumTokenizer(PreTrainedTokenizerFast):
    """`PreTrainedTokenizerFast` whose BOS, EOS and pad are `<|endoftext|>` (as in GPT-2), padding on
    the right; `to_str()` and `get_vocab_size()` keep the `tokenizers.Tokenizer` calls we save with."""

    def to_str(self) -> str:
        """The serialised `tokenizer.json` (what checkpoints store)."""
        return self.backend_tokenizer.to_str()

    def get_vocab_size(self) -> int:
        """Vocabulary size including special tokens (`tokenizers.Tokenizer.get_vocab_size`)."""
        return self.backend_tokenizer.get_vocab_size()


def as_hf_tokenizer(tokenizer: Tokenizer | PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Wrap a `tokenizers.Tokenizer` (ours, with `<|endoftext|>`); an HF tokenizer passes through."""
    if isinstance(tokenizer, PreTrainedTokenizerBase):
        return tokenizer
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(
            f"Expected a tokenizers.Tokenizer or a transformers PreTrainedTokenizerFast, got "
            f"{type(tokenizer).__name__}."
        )
    if tokenizer.token_to_id(BOS_TOKEN) is None:
        raise ValueError(
            f"The tokenizer has no {BOS_TOKEN!r} token, which serves as BOS, EOS and padding; "
            "train it with momentum_interp.data.corpus.train_bpe_tokenizer, which adds it."
        )
    return MomentumTokenizer(
        tokenizer_object=Tokenizer.from_str(tokenizer.to_str()),
        bos_token=BOS_TOKEN,
        eos_token=BOS_TOKEN,
        pad_token=BOS_TOKEN,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
