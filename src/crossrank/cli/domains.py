"""``crossrank domains`` and ``crossrank profiles``: list and remove registered models.

Both registries (:mod:`crossrank.models.domains`, :mod:`crossrank.models.profiles`) are
:class:`crossrank.models.registry.ModelRegistry` instances, so one pair of handlers serves both.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from crossrank.models.registry import ModelRegistry


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from crossrank.models.domains import DOMAINS, remove_domain

    register_registry_command(
        subparsers, DOMAINS, help_text="list or remove per-domain models (crossrank train --domain)", remove=remove_domain
    )


def register_registry_command(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    registry: ModelRegistry,
    *,
    help_text: str,
    remove: Callable[[str], bool] | None = None,
) -> None:
    """Add ``crossrank <registry.kind> [list|remove NAME]`` for ``registry``."""
    parser = subparsers.add_parser(registry.kind, help=help_text)
    commands = parser.add_subparsers(dest=f"{registry.kind}_command", metavar="ACTION")
    listing = commands.add_parser("list", help=f"registered {registry.label}s and their models")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=lambda args: run_list(registry, args))
    removing = commands.add_parser("remove", help=f"unregister a {registry.label} and delete its model copy")
    removing.add_argument("name")
    removing.set_defaults(handler=lambda args: run_remove(registry, args, remove))
    parser.set_defaults(handler=lambda args: run_list(registry, argparse.Namespace(format="table")))


def run_list(registry: ModelRegistry, args: argparse.Namespace) -> int:
    entries = registry.read()
    if args.format == "json":
        sys.stdout.write(json.dumps({"registry": str(registry.index_file), registry.kind: entries}, indent=2, sort_keys=True) + "\n")
        return 0
    if not entries:
        sys.stdout.write(f"no {registry.kind} registered ({registry.index_file})\n")
        return 0
    for name, entry in sorted(entries.items()):
        metric = entry.get("metrics", {}).get("dev_ndcg_after")
        detail = f"  dev nDCG@10 {metric:.4f}" if isinstance(metric, float) else ""
        sys.stdout.write(f"{name}\t{entry['path']}\tbase {entry.get('base_model')}{detail}\n")
    return 0


def run_remove(registry: ModelRegistry, args: argparse.Namespace, remove: Callable[[str], bool] | None = None) -> int:
    from crossrank.errors import InvalidInputError

    removed = remove(args.name) if remove is not None else registry.unregister(args.name) is not None
    if not removed:
        raise InvalidInputError(f"{registry.label} {args.name!r} is not registered (see crossrank {registry.kind} list)")
    sys.stdout.write(f"removed {registry.label} {args.name}\n")
    return 0
