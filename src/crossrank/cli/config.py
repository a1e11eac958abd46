"""``crossrank config show``: the effective reranker configuration and where each value came from."""

from __future__ import annotations

import argparse
import json
import sys

from crossrank.settings import CONFIG_ENV, resolve_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "config",
        help="show the effective configuration",
        description=(
            "Reranker options come from explicit arguments, then CROSSRANK_<OPTION> environment variables, "
            f"then the TOML/YAML file named by {CONFIG_ENV} (or --config), then the defaults."
        ),
    )
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION")
    show = actions.add_parser("show", help="print every option, its value and its source")
    show.add_argument("--config", default=None, help=f"configuration file (default: ${CONFIG_ENV})")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(handler=run_show)
    options = actions.add_parser("options", help="print the table of every option (Markdown, as in docs/options.md)")
    options.set_defaults(handler=run_options)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_show(args: argparse.Namespace) -> int:
    effective = resolve_settings(config_file=args.config)
    if args.format == "json":
        json.dump(effective.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    rows = [(name, json.dumps(value["value"]), value["source"]) for name, value in effective.to_dict()["options"].items()]
    name_width = max(len("option"), *(len(r[0]) for r in rows))
    value_width = min(48, max(len("value"), *(len(r[1]) for r in rows)))
    lines = [f"{'option':<{name_width}}  {'value':<{value_width}}  source"]
    for name, value, source in rows:
        if len(value) > value_width:
            value = value[: value_width - 1] + "…"
        lines.append(f"{name:<{name_width}}  {value:<{value_width}}  {source}")
    file_line = f"configuration file: {effective.config_file}" if effective.config_file else (
        f"configuration file: none (set {CONFIG_ENV} or pass --config)"
    )
    sys.stdout.write("\n".join([*lines, file_line]) + "\n")
    return 0


def run_options(args: argparse.Namespace) -> int:
    from crossrank.config import options_markdown

    sys.stdout.write(options_markdown())
    return 0
