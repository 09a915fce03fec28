"""Committed results: the zoo's variants record, and the command that renders the README's
result blocks and the model cards from them, `python -m momentum_interp.results render` (`--check` fails when they disagree; the blocks
themselves are `narrative.readme.blocks()`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from momentum_interp.paths import REPO_ROOT
from momentum_interp.provenance import command_line, provenance

ZOO_DIR = REPO_ROOT / "results" / "zoo"
ZOO_RECORD = "zoo.json"
VARIANTS_RECORD = "variants.json"
PROG = "python -m momentum_interp.results"


def record_variants(runs: dict[str, Path], results_dir: Path = ZOO_DIR) -> Path:
    """Write `variants.json` from variant run directories (`{variant name: run dir}`, each
    trained from `configs/zoo/variants/<name>.toml`); entries of the old record that have no
    run record yet stay listed as unrecorded."""
    from momentum_interp.io import atomic_write_json
    from momentum_interp.zoo import variant_record

    path = Path(results_dir) / VARIANTS_RECORD
    old = json.loads(path.read_text()) if path.is_file() else {"unrecorded": []}
    measured = [
        variant_record(name, Path(d), f"configs/zoo/variants/{name}.toml")
        for name, d in sorted(runs.items())
    ]
    record = {
        "provenance": provenance(command_line(PROG), None),
        "variants": measured,
        "unrecorded": [v for v in old["unrecorded"] if v["name"] not in runs],
        "unrecorded_note": old.get("unrecorded_note", ""),
    }
    atomic_write_json(path, record)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Render the README's result blocks and the model cards from results/.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("render", help="rewrite the README blocks and model cards")
    run.add_argument("--check", action="store_true", help="only report files that are stale")
    variants = sub.add_parser("record-variants", help="write results/zoo/variants.json")
    variants.add_argument("runs", nargs="+", help="NAME=RUN_DIR of each trained variant")
    args = parser.parse_args(argv)
    if args.command == "record-variants":
        runs = dict(item.split("=", 1) for item in args.runs)
        print(f"variants: {record_variants({k: Path(v) for k, v in runs.items()})}")
        return 0
    from momentum_interp.narrative.readme import render

    stale = render(check=args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'rendered'}: {path.relative_to(REPO_ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
