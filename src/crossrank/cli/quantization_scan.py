"""``crossrank quantization-scan CONFIG.yaml``: dev nDCG@10 of int8 exports with one layer kept in float."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "quantization-scan",
        help="which layers lose the most in int8: choose quantize_exclude (pip install 'crossrank[train]')",
        description=(
            "For a trained run (e.g. one whose int8 export the regression gate refused), quantize the "
            "fp32 export as the config asks, once with everything in int8 and once per encoder layer "
            "(and once for the pooler and head) kept in float32, and score the run's dev candidates with "
            "each graph. --products scans single matrix products instead. Prints a table; --json writes the figures."
        ),
    )
    parser.add_argument("config", help="the run's training config (YAML or JSON)")
    parser.add_argument(
        "--products", metavar="GLOB", default=None,
        help="scan each weight matrix product whose node name matches GLOB on its own "
             "(e.g. '/bert/encoder/layer.2/*') instead of whole layers",
    )
    parser.add_argument("--output-dir", default=None, help="override the config's output_dir")
    parser.add_argument("--json", dest="json_file", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--benchmark", metavar="SECTION", default=None, help="write the table to this BENCHMARKS.md section")
    parser.add_argument("--benchmarks-file", default="BENCHMARKS.md", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from crossrank.training.config import load_config
    from crossrank.training.quantization_scan import scan_float_groups

    log = logging.getLogger("crossrank.training")
    config = load_config(args.config, output_dir=args.output_dir)
    scan = scan_float_groups(config, products=args.products, log=log.info)
    table = scan.markdown()
    if args.json_file:
        Path(args.json_file).write_text(json.dumps(scan.to_dict(), indent=1) + "\n", encoding="utf-8")
    if args.benchmark:
        from crossrank.benchmarks import write_section

        what = (f"one weight matrix product matching `{args.products}`" if args.products
                else "one group of matrix products (an encoder layer, or everything outside the layers)")
        body = (
            f"## Quantization scan{' of single matrix products' if args.products else ''}: {Path(args.config).name}\n\n"
            f"The run `{config.output_dir}`'s fp32 export, quantized as its config asks, with "
            f"{what} at a time kept in float32, scored on the run's {len(json.loads((Path(config.output_dir) / 'dev-candidates.json').read_text()))} "
            f"dev queries (the split the regression gate uses) at max_length {config.max_length}.\n\n{table}\n"
        )
        write_section(args.benchmark, body, path=args.benchmarks_file)
    sys.stdout.write(table + "\n")
    return 0
