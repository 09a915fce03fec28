"""Checkpoint I/O: `model.safetensors` + `config.json` (+ `tokenizer.json`), never pickle.

`config.json` carries a format version and the SHA-256 of the weights (and tokenizer) file, so a
truncated, corrupt or mismatched set is caught on load with a message that says what to do. It is
also the commit point of a save: see `write_checkpoint`.

A packed checkpoint is the same in one file, `<name>.safetensors`, with the config (and
tokenizer) JSON in the safetensors metadata (`pack_checkpoint`); `from_pretrained` loads either.
Its metadata carries the SHA-256 of its tensors and other metadata (`sha256`), verified on load;
a packed file without one (another tool's) loads with a warning that it could not be verified.

On load the tensors must agree with the config: no integer tensors, a fixed γ equal to the
config's `gamma` (or to the per-head values recorded when `set_gamma` changed some heads), the
option parameters (`smear_logit`, `log_temperature`) present exactly when their options are on;
a floating dtype other than the model's is a "precision change" warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from tokenizers import Tokenizer

from momentum_interp.config import MomentumConfig
from momentum_interp.io import atomic_write_bytes, atomic_write_json
from momentum_interp.model.locate import (  # noqa: F401 (re-exported: the checkpoint API)
    CONFIG_FILE,
    PACKED_SUFFIX,
    CheckpointError,
    assets_dir,
    bundled_names,
    resolve,
)
from momentum_interp.version import __version__

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
PACKED_CHECKSUM = "sha256"  # packed metadata key: SHA-256 of the tensors and the other metadata
GAMMA_PER_HEAD = "gamma_per_head"  # a fixed γ's [layer][head] values, when not all == gamma
OPTION_PARAMETERS = {"smear_logit": "smeared_key", "log_temperature": "learned_temperature"}


def write_checkpoint(
    directory: str | Path,
    cfg: MomentumConfig,
    state_dict: dict[str, torch.Tensor],
    tokenizer: Tokenizer | None,
) -> Path:
    """Write weights, tokenizer and config so that the checkpoint as a whole changes atomically.

    A crash or kill at any moment leaves `directory` loading as the previous checkpoint or the
    new one, never a mix and never neither; files in `directory` that are not checkpoint files
    are never touched.

    Why not write a temporary sibling directory and rename it over `directory`: checkpoint
    directories are also run directories (`RunDirectory.finish` saves the final model into the
    run's root beside `run_config.json`, `metrics.json` and `checkpoints/`; the bundled models
    keep `card.md` and metrics there), so a directory swap would have to move those files too,
    and a crash mid-move, or a writer still using a path under the old directory, could lose
    them. Instead `config.json`, which holds the SHA-256 of every other file, is the commit
    point:

    1. the new weights (and tokenizer) are written, each atomically, under staged names that
       contain their SHA-256 (`.model.safetensors.<sha>.staged`); the old checkpoint is intact;
    2. `config.json` is atomically replaced: the new checkpoint is committed. Until step 3 ends,
       `read_checkpoint` finds the files by their checksums under the staged names;
    3. the staged files are renamed to their real names, and leftovers of saves that crashed
       earlier are removed.

    A save that fails before step 2 removes its staged files and leaves the old checkpoint as
    it was.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().contiguous().cpu() for name, t in state_dict.items()}
    files = {
        WEIGHTS_FILE: save_safetensors(tensors, metadata={"format_version": str(FORMAT_VERSION)})
    }
    if tokenizer is not None:
        files[TOKENIZER_FILE] = tokenizer.to_str().encode("utf-8")
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    staged = {name: directory / _staged_name(name, digests[name]) for name in files}
    meta = {
        "format_version": FORMAT_VERSION,
        "library": "momentum_interp",
        "library_version": __version__,
        "weights_sha256": digests[WEIGHTS_FILE],
        "has_tokenizer": tokenizer is not None,
        "config": cfg.to_dict(),
    }
    if tokenizer is not None:
        meta["tokenizer_sha256"] = digests[TOKENIZER_FILE]
    gamma = gamma_per_head(cfg, tensors)
    if gamma is not None:
        meta[GAMMA_PER_HEAD] = gamma
    try:
        for name, data in files.items():
            atomic_write_bytes(staged[name], data)
        _fsync_directory(directory)  # the staged files are on disk before the commit names them
        atomic_write_json(directory / CONFIG_FILE, meta)  # the commit point
    except BaseException:
        if not _config_names(directory, digests[WEIGHTS_FILE]):  # not committed: undo
            for path in staged.values():
                path.unlink(missing_ok=True)
        raise
    for name, path in staged.items():
        os.replace(path, directory / name)
    if tokenizer is None:
        (directory / TOKENIZER_FILE).unlink(missing_ok=True)  # a previous checkpoint's
    _fsync_directory(directory)
    for name in (WEIGHTS_FILE, TOKENIZER_FILE):
        for leftover in directory.glob(_staged_name(name, "*")):
            leftover.unlink(missing_ok=True)  # from saves that crashed after their commit
    return directory


def _staged_name(name: str, sha256: str) -> str:
    return f".{name}.{sha256}.staged"


def _fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (renames) to disk; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _config_names(directory: Path, weights_sha256: str) -> bool:
    """Whether `directory`'s config.json already commits to weights with this checksum."""
    try:
        meta = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("weights_sha256") == weights_sha256


def _read_committed(directory: Path, name: str, sha256: Any) -> tuple[bytes | None, bool]:
    """`(bytes, True)` of `name` with this SHA-256, from the file or its staged copy (see save).

    `(the file's bytes, False)` if no copy matches, `(None, False)` if there is no file at all.
    The file is tried again last, in case a save renamed the staged copy while we looked.
    """
    final = directory / name
    candidates = [final]
    if isinstance(sha256, str):
        candidates += [directory / _staged_name(name, sha256), final]
    found = None
    for path in candidates:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue
        if hashlib.sha256(data).hexdigest() == sha256:
            return data, True
        found = data
    return found, False


def read_checkpoint(
    directory: Path,
) -> tuple[MomentumConfig, dict[str, torch.Tensor], Tokenizer | None]:
    """Read and verify a checkpoint directory (or packed file); every failure is a
    `CheckpointError` with a fix."""
    if directory.is_file():
        return unpack_checkpoint(directory)
    meta = _read_meta(directory)
    weights_path = directory / WEIGHTS_FILE
    weights, verified = _read_committed(directory, WEIGHTS_FILE, meta.get("weights_sha256"))
    if weights is None:
        raise CheckpointError(
            f"{weights_path} is missing; the checkpoint is incomplete, save it again."
        )
    if not verified:
        raise CheckpointError(
            f"{weights_path} does not match the checksum in {CONFIG_FILE}: the weights are corrupt, "
            "truncated or from a different save. Restore or re-save the checkpoint."
        )
    try:
        tensors = load_safetensors(weights)
    except SafetensorError as e:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file ({e}).") from e
    cfg = _checked_config(meta.get("config"), tensors, meta.get(GAMMA_PER_HEAD), directory)
    tokenizer = None
    if meta.get("has_tokenizer"):
        tokenizer = _read_tokenizer(directory, meta.get("tokenizer_sha256"))
    return cfg, tensors, tokenizer


def _read_tokenizer(directory: Path, sha256: str | None) -> Tokenizer:
    tokenizer_path = directory / TOKENIZER_FILE
    try:
        if sha256 is None:  # written before checkpoints recorded the tokenizer's checksum
            return Tokenizer.from_file(str(tokenizer_path))
        data, verified = _read_committed(directory, TOKENIZER_FILE, sha256)
        if data is None:
            raise FileNotFoundError(f"no file {tokenizer_path}")
        if not verified:
            raise ValueError(f"it does not match the checksum in {CONFIG_FILE}")
        return Tokenizer.from_str(data.decode("utf-8"))
    except Exception as e:
        raise CheckpointError(
            f"{tokenizer_path} is missing or corrupt ({e}); restore it from the original run."
        ) from e


def _read_meta(directory: Path) -> dict:
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(
            f"{directory} has no {CONFIG_FILE}: it is not a momentum_interp checkpoint "
            "(write one with model.save_pretrained(directory))."
        )
    try:
        meta = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path} is corrupt ({e}); restore or re-save it.") from e
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int):
        raise CheckpointError(
            f"{config_path} has no format_version: it was not written by momentum_interp."
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{directory} uses checkpoint format {version}, newer than this momentum_interp "
            f"understands ({FORMAT_VERSION}); upgrade momentum_interp to load it."
        )
    return meta


def gamma_per_head(cfg: MomentumConfig, tensors: dict[str, torch.Tensor]) -> list | None:
    """A fixed γ's values `[layer][head]` when some head's differs from `cfg.gamma` (after
    `set_gamma`, or a dtype change that rounded it); None when every head holds `cfg.gamma`
    or γ is learned (its trained values are weights, not config)."""
    if cfg.gamma_learnable:
        return None
    gammas = [tensors[f"blocks.{layer}.attn.gamma"] for layer in range(cfg.n_layers)]
    if all(torch.equal(g, torch.full_like(g, cfg.gamma)) for g in gammas):
        return None
    return [g.tolist() for g in gammas]


def _checked_config(
    config: Any, tensors: dict[str, torch.Tensor], gamma: list | None, source: Path
) -> MomentumConfig:
    """The checkpoint's config, once it agrees with the tensors' dtypes and fixed γ values
    (names and shapes: `load_weights`)."""
    try:
        cfg = MomentumConfig.from_dict(config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source} holds an invalid model config: {e}") from e
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise CheckpointError(
                f"{source}: tensor {name} is {str(tensor.dtype).removeprefix('torch.')}, but "
                "every weight and buffer of a model is floating point: the file was not written "
                "by save_pretrained. Convert the tensor to float, or re-export the checkpoint."
            )
    if cfg.gamma_learnable:
        return cfg
    try:
        expected = torch.tensor(
            gamma if gamma is not None else [[cfg.gamma] * cfg.n_heads] * cfg.n_layers,
            dtype=torch.float64,
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: {GAMMA_PER_HEAD} is not a [layer][head] table") from e
    for layer in range(cfg.n_layers):
        name = f"blocks.{layer}.attn.gamma"
        saved = tensors.get(name)
        if saved is None or saved.shape != (cfg.n_heads,):
            continue  # load_weights names a missing or mis-shaped tensor
        if expected.shape == (cfg.n_layers, cfg.n_heads) and torch.equal(
            saved, expected[layer].to(saved.dtype)
        ):
            continue
        said = f"records {GAMMA_PER_HEAD} {gamma}" if gamma else f"says gamma = {cfg.gamma}"
        raise CheckpointError(
            f"{source}: {name} holds the fixed γ {saved.tolist()}, but its config {said}: the "
            "config was edited after the save, or the weights belong to another one. Restore "
            "the config the weights were saved with (or set its gamma to the saved value)."
        )
    return cfg


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy `tensors` into `model`, naming every missing, unexpected or mis-shaped weight (and
    the option that explains a missing or extra option parameter); warn of a precision change."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = [
        f"{name}: file {tuple(tensors[name].shape)} vs config {tuple(param.shape)}"
        for name, param in expected.items()
        if name in tensors and tensors[name].shape != param.shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"The config in {source} does not match its weights: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatches {mismatched[:5]}. "
            f"{_option_hints(missing, unexpected)}"
            "The config.json was probably edited or copied from another run."
        )
    changed = {
        name: (tensors[name].dtype, param.dtype)
        for name, param in expected.items()
        if tensors[name].dtype != param.dtype
    }
    if changed:
        pairs = sorted({f"{a} -> {b}".replace("torch.", "") for a, b in changed.values()})
        warnings.warn(
            f"{source}: precision change: {len(changed)} tensor(s) stored as another floating "
            f"dtype than the model's ({', '.join(pairs)}), e.g. {sorted(changed)[:3]}; the "
            "loaded values carry the stored precision.",
            stacklevel=3,
        )
    model.load_state_dict(tensors)


def _option_hints(missing: list[str], unexpected: list[str]) -> str:
    """Which config option explains a missing or unexpected option parameter, as sentences."""
    hints = set()
    for names, holds in ((missing, False), (unexpected, True)):
        for name in names:
            leaf = name.rsplit(".", 1)[-1]
            if leaf in OPTION_PARAMETERS:
                option = OPTION_PARAMETERS[leaf]
                have = "hold" if holds else "lack"
                hints.add(f"The weights {have} {leaf}, but the config has {option} = {not holds}. ")
    return "".join(sorted(hints))


def check_finite(model: torch.nn.Module, source: str | Path) -> None:
    """Refuse a model whose weights hold NaN or ±inf, naming each such tensor: every number an
    analysis computed from them would be NaN (a diverged run's weights, or a corrupt file)."""
    bad = []
    for name, tensor in model.state_dict().items():
        count = int((~torch.isfinite(tensor)).sum()) if tensor.is_floating_point() else 0
        if count:
            bad.append(f"{name} ({count} of {tensor.numel()} values)")
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise CheckpointError(
            f"{source} holds non-finite weights (NaN or inf) in {', '.join(bad[:5])}{more}: "
            "any analysis of them would be meaningless. They come from a run that diverged or "
            "a corrupt file; use an earlier checkpoint of the run, or retrain it."
        )


def pack_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    tokenizer: Tokenizer | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """One `.safetensors` file holding `model`'s state dict (its parameters cast to `dtype` if
    given; buffers such as a fixed γ keep theirs, so 0.707 stays 0.707) with the config and
    tokenizer JSON in its metadata: a checkpoint that travels as a single file."""
    path = Path(path)
    if path.suffix != PACKED_SUFFIX:
        raise CheckpointError(f"a packed checkpoint's name ends in {PACKED_SUFFIX}, got {path}")
    buffers = {name for name, _ in model.named_buffers()}  # the state dict splits W_QKV: not params
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        cast = dtype and t.is_floating_point() and name not in buffers
        tensors[name] = (t.to(dtype) if cast else t).contiguous()
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "library": "momentum_interp",
        "library_version": __version__,
        "config": json.dumps(model.cfg.to_dict()),
    }
    gamma = gamma_per_head(model.cfg, tensors)
    if gamma is not None:
        metadata[GAMMA_PER_HEAD] = json.dumps(gamma)
    if tokenizer is not None:
        metadata["tokenizer"] = tokenizer.to_str()
    # the tensor layout does not depend on the metadata: a draft's digest is the file's
    metadata[PACKED_CHECKSUM] = _packed_digest(save_safetensors(tensors, metadata=metadata))
    atomic_write_bytes(path, save_safetensors(tensors, metadata=metadata))
    return path


def _packed_digest(data: bytes) -> str:
    """SHA-256 of a safetensors file's tensor index, its metadata but the checksum itself, and
    its tensor bytes: everything a flipped bit could change."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    metadata = header.pop("__metadata__", None) or {}
    metadata.pop(PACKED_CHECKSUM, None)
    digest = hashlib.sha256(json.dumps([header, metadata], sort_keys=True).encode("utf-8"))
    digest.update(data[8 + size :])
    return digest.hexdigest()


def unpack_checkpoint(
    path: str | Path,
) -> tuple[MomentumConfig, dict[str, torch.Tensor], Tokenizer | None]:
    """The config, weights and tokenizer of a file written by `pack_checkpoint`."""
    path = Path(path)
    try:
        data = path.read_bytes()
        tensors = load_safetensors(data)
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}).") from e
    if metadata.get("library") != "momentum_interp" or "config" not in metadata:
        raise CheckpointError(
            f"{path} holds no momentum_interp config in its metadata: it is not a packed "
            "checkpoint (write one with checkpoint.pack_checkpoint)."
        )
    version = int(metadata.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {version}, newer than this momentum_interp "
            f"understands ({FORMAT_VERSION}); upgrade momentum_interp to load it."
        )
    if PACKED_CHECKSUM not in metadata:
        warnings.warn(
            f"{path} could not be verified: it carries no {PACKED_CHECKSUM} checksum (written by "
            "another tool or an older momentum_interp); re-pack it to add one.",
            stacklevel=2,
        )
    elif metadata[PACKED_CHECKSUM] != _packed_digest(data):
        raise CheckpointError(
            f"{path} does not match the checksum in its metadata: the file is corrupt or was "
            "modified after it was written. Restore it from the original, or pack it again."
        )
    try:
        config = json.loads(metadata["config"])
        gamma = json.loads(metadata[GAMMA_PER_HEAD]) if GAMMA_PER_HEAD in metadata else None
    except ValueError as e:
        raise CheckpointError(f"{path} holds an invalid model config: {e}") from e
    cfg = _checked_config(config, tensors, gamma, path)
    tokenizer = Tokenizer.from_str(metadata["tokenizer"]) if "tokenizer" in metadata else None
    return cfg, tensors, tokenizer
