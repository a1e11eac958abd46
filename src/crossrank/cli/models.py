"""``crossrank models``: list, pull, remove and describe models; list the model families."""

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
    info = commands.add_parser(
        "info", help="a model's family, how it is scored, its lengths, languages and calibration",
        description="Describe a model as crossrank would load it: its family and how that family scores, the "
        "default and largest max_length, the languages its model card states and whether a calibration is fitted.",
    )
    info.add_argument("name", nargs="?", default=DEFAULT_MODEL, help="model folder or name (default: the embedded model)")
    info.add_argument("--family", default=None, help="the family to describe it as (default: as the engine chooses)")
    info.add_argument("--instruction", default=None, help="instruction of an instruction-aware family")
    info.add_argument("--format", choices=("text", "json"), default="text")
    info.set_defaults(handler=run_info)
    families = commands.add_parser("families", help="the model families crossrank can score, and how each is scored")
    families.add_argument("--format", choices=("text", "json"), default="text")
    families.set_defaults(handler=run_families)
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


def model_info(name: str, *, family: str | None = None, instruction: str | None = None) -> dict[str, object]:
    """What ``crossrank models info`` reports about a model (no weights are loaded)."""
    from crossrank.config import RerankerConfig
    from crossrank.engine.loading import prepare_model

    prepared = prepare_model(RerankerConfig(model=name, family=family, instruction=instruction, allow_download=False))
    config, files = prepared.config, prepared.files
    calibration: dict[str, object] = {"fitted": False}
    if prepared.calibration_file is not None:
        fitted = prepared.calibration
        calibration = {
            "fitted": True, "file": str(prepared.calibration_file), "calibrator": fitted.calibrator.kind,
            "threshold": fitted.threshold, "abstention": bool(fitted.abstention),
        }
    note = prepared.family.probability_note(files)
    return {
        "name": config.name,
        "revision": config.revision,
        "path": str(prepared.path),
        "family": prepared.family.name,
        "family_description": prepared.family.description,
        "scoring": prepared.family.scoring + (f"; {note}" if note else ""),
        "instruction": prepared.instruction,
        "architectures": list(files.architectures),
        "max_length": prepared.encoder.max_length,
        "max_length_limit": prepared.limit,
        "weights": {"onnx": config.onnx_file, "torch": config.torch_weights, "quantization": config.quantization},
        "languages": list(files.languages),
        "calibration": calibration,
        "license": config.license,
    }


def run_info(args: argparse.Namespace) -> int:
    info = model_info(args.name, family=args.family, instruction=args.instruction)
    if args.format == "json":
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    calibration = info["calibration"]
    assert isinstance(calibration, dict)
    if calibration["fitted"]:
        fitted = f"fitted ({calibration['calibrator']}"
        fitted += f", threshold {calibration['threshold']:.4g}" if calibration["threshold"] is not None else ", no threshold"
        fitted += ", abstention rule)" if calibration["abstention"] else ")"
    else:
        fitted = "none: probabilities are a plain sigmoid of the raw score (fit one with 'crossrank tune')"
    weights = info["weights"]
    assert isinstance(weights, dict)
    lines = [
        f"{info['name']} ({info['revision']})",
        f"  path:         {info['path']}",
        f"  family:       {info['family']}: {info['family_description']}",
        f"  scoring:      {info['scoring']}",
        *([f"  instruction:  {info['instruction']}"] if info["instruction"] else []),
        *([f"  architecture: {', '.join(info['architectures'])}"] if info["architectures"] else []),  # type: ignore[arg-type]
        f"  max length:   {info['max_length']} tokens by default, at most {info['max_length_limit']}",
        f"  weights:      onnx {weights['onnx'] or '-'} ({weights['quantization']}), torch {weights['torch'] or '-'}",
        f"  languages:    {', '.join(info['languages']) or 'not stated by the model card'}",  # type: ignore[arg-type]
        f"  calibration:  {fitted}",
        f"  license:      {info['license'] or 'not recorded'}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def run_families(args: argparse.Namespace) -> int:
    from crossrank.families import known_models
    from crossrank.plugins import family_registry

    registry = family_registry()
    if args.format == "json":
        json.dump([family.describe() for family in registry.values()], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    table = known_models(registry)
    out = []
    for family in registry.values():
        out.append(f"{family.name}  ({family.kind})")
        out.append(f"  {family.description}")
        out.append(f"  {family.scoring}")
        if family.instruction_aware:
            out.append(f"  instruction: {family.default_instruction or 'none by default'} (instruction= changes it)")
        ids = sorted(model for model, name in table.items() if name == family.name)
        if ids:
            out.append(f"  known models: {', '.join(ids)}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0
