"""``crossrank distill CONFIG.yaml``: train a faster student on a teacher's scores (MarginMSE)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "distill",
        help="distill a teacher into a smaller student with MarginMSE (pip install 'crossrank[train]')",
        description=(
            "The config is a training config with 'teacher' set (base_model: the teacher's float "
            "checkpoint, used by the even-layers student). The loss defaults to margin_mse."
        ),
    )
    parser.add_argument("config", help="training config (YAML or JSON) with 'teacher'")
    parser.add_argument("--student", choices=("even-layers", "minilm"), default="even-layers",
                        help="the teacher's even layers, or all-MiniLM-L6-v2 with a new head")
    parser.add_argument("--output-dir", default=None, help="override the config's output_dir")
    parser.add_argument("--domain", default=None, help="register the student under this domain")
    parser.add_argument("--restart", action="store_true", help="ignore existing checkpoints and start over")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from crossrank.training.config import load_config
    from crossrank.training.distill import distill

    config = load_config(args.config, domain=args.domain, output_dir=args.output_dir, loss_default="margin_mse")
    result = distill(config, student=args.student, resume=not args.restart)
    sys.stdout.write(json.dumps({"model": str(result.model_dir), **result.metrics}, indent=2, sort_keys=True) + "\n")
    return 0
