"""`momentum-interp corpus build`: its arguments and what it does (download the pinned sdists,
write the corpus, verify or rewrite the tokenizer and manifest)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from momentum_interp.arguments import command_text, input_file, output_dir, output_file
from momentum_interp.paths import REPO_ROOT

# Defaults of `corpus build`: data.code_corpus's *_PATH names, repeated so that --help and bad
# arguments answer without importing it (tests/test_data_code_corpus.py checks they are equal).
CORPUS_CONFIG = str(REPO_ROOT / "configs" / "corpus" / "pypi_code.toml")


CORPUS_OUT = str(REPO_ROOT / "data" / "code_corpus.jsonl.xz")


CORPUS_DOWNLOADS = str(REPO_ROOT / "data" / "corpus_downloads")


CORPUS_TOKENIZER = str(REPO_ROOT / "assets" / "code_corpus" / "tokenizer.json")


CORPUS_MANIFEST = str(REPO_ROOT / "assets" / "code_corpus" / "manifest.json")


def _repo_relative(path: Path) -> str:
    """`path` relative to the checkout when inside it (so the manifest names no machine's paths)."""
    path = path.resolve()
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)


def _report_corpus_check(args: argparse.Namespace, items: list[tuple]) -> int:
    """Print what the build matched in the manifest; on a difference, one line saying what and how
    to update, and status 1."""
    for name, expected, actual in items:
        if expected == actual:
            print(f"matches {args.manifest}: {name} {actual}")
    differ = [f"{name} {new} (manifest: {old})" for name, old, new in items if old != new]
    if not differ:
        return 0
    print(
        f"momentum-interp corpus build: differs from {args.manifest}: {'; '.join(differ)}. "
        f"The corpus file {args.out} is written; if the change is intended (a new config or "
        "archives), rerun with --update-assets to retrain the tokenizer and rewrite it and the "
        "manifest, then commit both",
        file=sys.stderr,
    )
    return 1


def _write_corpus_manifest(args: argparse.Namespace, build, items: list[tuple] | None) -> None:
    """Write the manifest of a build that trained the tokenizer; say what changed from `items`'s
    previous manifest (None: there was none)."""
    from momentum_interp.io import atomic_write_json
    from momentum_interp.provenance import provenance

    manifest = {"provenance": provenance(command_text(args), None), **build.to_dict()}
    manifest["config"] = _repo_relative(args.config)
    atomic_write_json(args.manifest, manifest)
    print(f"{build.tokenizer.tokens / 1e6:.1f}M tokens; tokenizer {args.tokenizer}")
    print(f"manifest: {args.manifest}")
    if items is not None:
        changed = [f"{name} {old} -> {new}" for name, old, new in items if old != new]
        print(f"changed from the previous manifest: {'; '.join(changed) or 'nothing'}")


def cmd_corpus_build(args: argparse.Namespace) -> int:
    from momentum_interp.data.code_corpus import (
        DownloadError,
        build_corpus,
        fetch_archives,
        load_corpus_config,
        load_manifest,
        manifest_items,
    )

    config = load_corpus_config(args.config)  # checked before any download
    previous = None  # the manifest to verify against, or (--update-assets) the one replaced
    if not args.update_assets:
        previous = load_manifest(args.manifest)
        if not args.tokenizer.is_file():
            raise FileNotFoundError(
                f"no tokenizer at {args.tokenizer} to verify against {args.manifest}; "
                "pass --update-assets to train one"
            )
    elif args.manifest.is_file():
        previous = load_manifest(args.manifest)
    try:
        fetch_archives(config, args.downloads, progress=not args.quiet)
    except DownloadError as e:
        print(f"momentum-interp corpus build: {e}", file=sys.stderr)
        return 1
    tokenizer_out = args.tokenizer if args.update_assets else None
    build = build_corpus(config, args.downloads, args.out, tokenizer_out, progress=not args.quiet)
    print(
        f"{build.documents} documents, {build.text_bytes / 1e6:.1f} MB of text; corpus {args.out} "
        f"({build.corpus_bytes / 2**20:.1f} MiB, sha256 {build.corpus_sha256})"
    )
    items = None if previous is None else manifest_items(build, previous, args.tokenizer)
    if args.update_assets:
        _write_corpus_manifest(args, build, items)
        return 0
    return _report_corpus_check(args, items)


def add_corpus_parser(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add `corpus build` to the subcommands `sub`; returns the `corpus` group's subcommands."""
    corpus = sub.add_parser("corpus", help="the code corpus of the GPU language-model comparison")
    corpus_sub = corpus.add_subparsers(dest="corpus_command", required=True)
    build = corpus_sub.add_parser(
        "build",
        help="download the pinned sdists (once, checked by sha256), write the corpus and verify "
        "it against the committed manifest",
    )
    build.add_argument(
        "--config",
        type=input_file,
        default=CORPUS_CONFIG,
        help="TOML of pinned packages (default: %(default)s)",
    )
    build.add_argument(
        "--out",
        type=output_file,
        default=CORPUS_OUT,
        help="corpus file (.xz; default: %(default)s)",
    )
    build.add_argument(
        "--downloads",
        type=output_dir,
        default=CORPUS_DOWNLOADS,
        help="archive cache directory (default: %(default)s)",
    )
    build.add_argument(
        "--tokenizer",
        type=output_file,
        default=CORPUS_TOKENIZER,
        help="committed tokenizer JSON, verified (rewritten with --update-assets; default: "
        "%(default)s)",
    )
    build.add_argument(
        "--manifest",
        type=output_file,
        default=CORPUS_MANIFEST,
        help="committed manifest JSON the build is verified against (rewritten with "
        "--update-assets; default: %(default)s)",
    )
    build.add_argument(
        "--update-assets",
        action="store_true",
        help="retrain the tokenizer and rewrite it and the manifest (else they are only verified)",
    )
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=cmd_corpus_build)
    return corpus_sub
