"""``crossrank train CONFIG.yaml``: fine-tune, calibrate, export, quantize and gate a cross-encoder."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a cross-encoder from a YAML config (pip install 'crossrank[train]')",
        description=(
            "Train from a YAML config, then automatically calibrate on the dev split, export ONNX, "
            "quantize to int8 and run the regression gate (the run fails when int8 dev nDCG@10 drops "
            "more than gate_tolerance below fp32). An interrupted run resumes from its last checkpoint."
        ),
    )
    parser.add_argument("config", help="training config (YAML or JSON)")
    parser.add_argument("--domain", default=None, help="register the finished model under this domain")
    parser.add_argument("--output-dir", default=None, help="override the config's output_dir")
    parser.add_argument("--restart", action="store_true", help="ignore existing checkpoints and start over")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from crossrank.training.config import load_config
    from crossrank.training.trainer import train

    config = load_config(args.config, domain=args.domain, output_dir=args.output_dir)
    result = train(config, resume=not args.restart)
    sys.stdout.write(json.dumps({"model": str(result.model_dir), **result.metrics}, indent=2, sort_keys=True) + "\n")
    return 0
