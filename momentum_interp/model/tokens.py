"""The model's token methods, as in TransformerLens: text or ids to validated `[batch, pos]`
tokens and back, single tokens and their positions. Mixed into `HookedMomentumTransformer`,
which supplies `cfg`, `tokenizer` and `W_E`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from momentum_interp.model import inputs


class TokenMethods:
    """`to_tokens`, `to_string`, `to_str_tokens`, `to_single_token`, `to_single_str_token`,
    `get_token_position` of a model with `cfg` and `tokenizer`."""

    def to_tokens(
        self,
        input: str | Sequence | torch.Tensor,
        prepend_bos: bool | None = None,
        padding_side: str | None = None,
        move_to_device: bool = True,
        truncate: bool = True,
    ) -> torch.Tensor:
        """Text, space-separated ids, id lists or a tensor → validated `[batch, pos]` (on the
        model's device unless `move_to_device=False`); texts of different lengths are padded (text
        models) on `padding_side`. As in TransformerLens, text longer than `n_ctx` (BOS included)
        is cut to `n_ctx` tokens unless `truncate=False`; ids and tensors are never cut."""
        if isinstance(input, torch.Tensor):
            tokens = input
        else:
            bos = self.cfg.default_prepend_bos if prepend_bos is None else prepend_bos
            max_len = self.cfg.n_ctx if truncate else None
            ids = inputs.encode(input, self.tokenizer, bos, padding_side, max_len)
            tokens = torch.tensor(ids, dtype=torch.long)
        n_ctx = self.cfg.n_ctx if truncate or isinstance(input, torch.Tensor) else None
        tokens = inputs.check_tokens(tokens, self.cfg.d_vocab, n_ctx)
        return tokens.to(self.cfg.device) if move_to_device else tokens

    def to_string(self, tokens: torch.Tensor | Sequence[int]) -> str | list[str]:
        """Token ids back to text; a `[batch, pos]` tensor gives one string per sequence."""
        tokens = torch.as_tensor(tokens)
        if tokens.ndim == 2:
            return [inputs.decode(row.tolist(), self.tokenizer) for row in tokens]
        if tokens.ndim > 2:
            raise ValueError(f"to_string takes [pos] or [batch, pos], got {tuple(tokens.shape)}.")
        return inputs.decode(tokens.reshape(-1).tolist(), self.tokenizer)

    def to_str_tokens(
        self,
        input: str | Sequence | torch.Tensor,
        prepend_bos: bool | None = None,
        padding_side: str | None = None,
    ) -> list[str] | list[list[str]]:
        """One string per token of a single sequence; a list of prompts gives one list each (as in
        TransformerLens). `prepend_bos` applies to text only."""
        if isinstance(input, list) and input and not isinstance(input[0], int):
            return [self.to_str_tokens(item, prepend_bos, padding_side) for item in input]
        if isinstance(input, torch.Tensor):
            tokens = input.squeeze().reshape(-1)
        else:
            tokens = self.to_tokens(input, prepend_bos, padding_side)
            if tokens.shape[0] != 1:
                raise ValueError("to_str_tokens takes a single sequence; index the batch first.")
            tokens = tokens[0]
        return inputs.str_tokens(tokens.tolist(), self.tokenizer)

    def to_single_token(self, string: str) -> int:
        """The id of a string that is exactly one token (no BOS)."""
        tokens = self.to_tokens(string, prepend_bos=False).squeeze()
        if tokens.numel() != 1:
            raise ValueError(
                f"{string!r} is {tokens.numel()} tokens, not one: "
                f"{self.to_str_tokens(string, prepend_bos=False)}."
            )
        return int(tokens.item())

    def to_single_str_token(self, int_token: int) -> str:
        """The string of one token id."""
        if not isinstance(int_token, int) or not 0 <= int_token < self.cfg.d_vocab:
            raise ValueError(f"Expected a token id in [0, {self.cfg.d_vocab}), got {int_token!r}.")
        return self.to_str_tokens(torch.tensor([int_token]))[0]

    def get_token_position(
        self,
        single_token: str | int | torch.Tensor,
        input: str | torch.Tensor,
        mode: str = "first",
        prepend_bos: bool | None = None,
        padding_side: str | None = None,
    ) -> int:
        """Position of `single_token` in `input` (`mode` "first" or "last"), as in TransformerLens."""
        if mode not in ("first", "last"):
            raise ValueError(f"mode must be 'first' or 'last', not {mode!r}.")
        tokens = input if isinstance(input, torch.Tensor) else self.to_tokens(input, prepend_bos)
        if tokens.ndim == 2:
            if tokens.shape[0] != 1:
                raise ValueError(f"Tokens must be [pos] or [1, pos], got {tuple(tokens.shape)}.")
            tokens = tokens[0]
        if isinstance(single_token, str):
            single_token = self.to_single_token(single_token)
        indices = (tokens == int(single_token)).nonzero().flatten()
        if len(indices) == 0:
            raise ValueError(f"Token {int(single_token)} does not occur in the input.")
        return int(indices[0 if mode == "first" else -1])

    def _tokens_on_device(
        self,
        input: torch.Tensor | str | Sequence,
        prepend_bos: bool | None = None,
        padding_side: str | None = None,
    ) -> torch.Tensor:
        if isinstance(input, torch.Tensor):
            tokens = inputs.check_tokens(input, self.cfg.d_vocab, self.cfg.n_ctx)
            return tokens.to(self.W_E.device)
        return self.to_tokens(input, prepend_bos, padding_side)
