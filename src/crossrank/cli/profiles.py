"""``crossrank profiles``: list and remove speed profiles (``crossrank distill --profile``)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from crossrank.cli.domains import register_registry_command
    from crossrank.models.profiles import PROFILES

    register_registry_command(
        subparsers, PROFILES, help_text="list or remove speed profiles (crossrank distill --profile; Reranker(profile=...))"
    )
