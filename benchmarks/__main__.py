"""`python -m benchmarks <command>`: the benchmark suite's entry point.

throughput   training-step throughput: ours γ=1 / γ=0 / reference GPT / analysis path
overheads    where ours loses time against the reference (CPU ablations, op counts, bf16 bytes)
demo_timing  time the pieces of `momentum-interp demo` on CPU with 1 and 2 threads
scoring      time `score_heads` against TransformerLens's `detect_head` (12 × 12 heads)
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    from benchmarks import bench_scoring, demo_timing, overheads, throughput

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in (
        ("throughput", throughput),
        ("overheads", overheads),
        ("demo_timing", demo_timing),
        ("scoring", bench_scoring),
    ):
        doc = (module.__doc__ or "").strip().splitlines()[0]
        command = sub.add_parser(
            name,
            help=doc,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(func=module.main)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
