"""``crossrank domains``: list and remove per-domain models."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("domains", help="list or remove per-domain models (crossrank train --domain)")
    commands = parser.add_subparsers(dest="domains_command", metavar="ACTION")
    listing = commands.add_parser("list", help="registered domains and their models")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=run_list)
    remove = commands.add_parser("remove", help="unregister a domain and delete its model copy")
    remove.add_argument("name")
    remove.set_defaults(handler=run_remove)
    parser.set_defaults(handler=lambda args: run_list(argparse.Namespace(format="table")))


def run_list(args: argparse.Namespace) -> int:
    from crossrank.models.domains import domains_file, list_domains

    domains = list_domains()
    if args.format == "json":
        sys.stdout.write(json.dumps({"registry": str(domains_file()), "domains": domains}, indent=2, sort_keys=True) + "\n")
        return 0
    if not domains:
        sys.stdout.write(f"no domains registered ({domains_file()})\n")
        return 0
    for name, entry in sorted(domains.items()):
        metric = entry.get("metrics", {}).get("dev_ndcg_after")
        detail = f"  dev nDCG@10 {metric:.4f}" if isinstance(metric, float) else ""
        sys.stdout.write(f"{name}\t{entry['path']}\tbase {entry.get('base_model')}{detail}\n")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from crossrank.errors import InvalidInputError
    from crossrank.models.domains import remove_domain

    if not remove_domain(args.name):
        raise InvalidInputError(f"domain {args.name!r} is not registered (see crossrank domains list)")
    sys.stdout.write(f"removed domain {args.name}\n")
    return 0
