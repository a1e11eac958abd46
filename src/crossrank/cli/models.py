"""``crossrank models``: list, pull and remove models in the cache."""

from __future__ import annotations

import argparse
import json
import sys

from crossrank.models.sources import DEFAULT_MODEL


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("models", help="list, pull or remove models")
    commands = parser.add_subparsers(dest="models_command", metavar="ACTION")
    listing = commands.add_parser("list", help="models in the cache and models the sources can fetch")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=run_list)
    pull = commands.add_parser("pull", help="fetch a model into the cache")
    pull.add_argument("name", nargs="?", default=DEFAULT_MODEL)
    pull.add_argument("--force", action="store_true", help="fetch again even if cached")
    pull.set_defaults(handler=run_pull)
    remove = commands.add_parser("remove", help="delete a model from the cache")
    remove.add_argument("name")
    remove.set_defaults(handler=run_remove)
    parser.set_defaults(handler=lambda args: run_list(argparse.Namespace(format="table")))


def run_list(args: argparse.Namespace) -> int:
    from crossrank.models.files import models_dir
    from crossrank.models.resolve import cached_models
    from crossrank.models.sources import describe_entry
    from crossrank.plugins import model_sources

    cached = cached_models()
    available = [describe_entry(e) for s in model_sources() for e in s.entries()]
    if args.format == "json":
        payload = {
            "cache": str(models_dir()),
            "cached": [
                {"name": m.config.name, "revision": m.config.revision, "path": str(m.path),
                 "license": m.config.license, "origin": m.config.origin}
                for m in cached
            ],
            "available": available,
        }
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    out = [f"model cache: {models_dir()}", "", "cached:"]
    out += [f"  {m.config.name}  ({m.config.revision}, license {m.config.license})\n    origin: {m.config.origin}" for m in cached] or ["  (none)"]
    out += ["", "available from registered sources:"]
    out += [
        f"  {e['name']}  [{e['source']}, license {e['license']}"
        + (f", {e['size_mb']:g} MB download" if e.get("size_mb") else "")
        + f"] {e['description']}"
        for e in available
    ] or ["  (none)"]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from crossrank.models.resolve import pull_model

    resolved = pull_model(args.name, force=args.force)
    sys.stdout.write(f"{resolved.config.name} ({resolved.config.revision}) is in {resolved.path}\n")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from crossrank.errors import ModelNotFoundError
    from crossrank.models.resolve import remove_cached

    if not remove_cached(args.name):
        raise ModelNotFoundError(f"{args.name} is not in the model cache")
    sys.stdout.write(f"removed {args.name}\n")
    return 0
