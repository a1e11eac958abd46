"""``crossrank bench families``: score parity of every model family, written to ``BENCHMARKS.md``.

For each model (``--model FOLDER[=FAMILY]``, or with ``--tiny`` the tiny random checkpoints of
every family that the test suite builds, ``tests/families/family_models.py``) it measures, on
crossrank's probe pairs:

* torch vs the family's own documented computation (``--tiny`` only: the references in
  ``tests/families/family_references.py``: transformers one pair at a time for classifiers,
  ``CrossEncoder.predict``, the Qwen3-Reranker model card, FlagEmbedding's and mxbai-rerank's
  formulas);
* batch invariance (one batched call vs one call per pair);
* ``crossrank export`` fp32 ONNX vs torch, and the int8 graph (run per token) vs fp32;
* on a CUDA device, torch float16 and bfloat16 vs float32.

Example:
    crossrank bench families --tiny
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "run_families"]

_TINY_FAMILIES = {"qwen3": "qwen3-reranker", "gemma": "bge-llm-reranker", "qwen2": "mxbai-rerank-v2"}
_TINY_KINDS = ("bert", "electra", "distilbert", "modernbert", "xlm-roberta", "deberta-v2", "qwen3-seq-cls", "st", "qwen3", "gemma", "qwen2")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "families",
        help="score parity per model family: reference, batching, ONNX fp32/int8, fp16/bf16 on GPU",
        description=(
            "Measure, per model, how crossrank's scores compare with the family's reference computation, across "
            "batching, with the exported ONNX graph (fp32 and int8 per token) and, on CUDA, in float16/bfloat16."
        ),
    )
    parser.add_argument("--model", action="append", default=[], metavar="FOLDER[=FAMILY]", help="a model folder (repeatable)")
    parser.add_argument("--tiny", action="store_true", help="also the tiny random checkpoints of every family (needs the repository's tests/)")
    parser.add_argument("--repo", default=".", help="repository root holding tests/families (default: .)")
    parser.add_argument("--device", default=None, help="device for the float16/bfloat16 rows (default: cuda when available)")
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--section", default="model-families")
    parser.add_argument("--no-write", action="store_true", help="print the table without writing BENCHMARKS.md")
    parser.set_defaults(handler=lambda args: run_families(args))


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        from crossrank.errors import ConfigurationError

        raise ConfigurationError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _tiny_models(repo: Path, root: Path) -> tuple[list[tuple[str, Path, str | None]], Any]:
    from crossrank.errors import ConfigurationError

    helpers = repo / "tests" / "families"
    if not (helpers / "family_models.py").is_file():
        raise ConfigurationError(f"--tiny needs the repository's tests: expected {helpers / 'family_models.py'} (pass --repo)")
    for folder in (repo / "tests", helpers):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    builders = _load(helpers / "family_models.py", "family_models")
    references = _load(helpers / "family_references.py", "family_references")
    models: list[tuple[str, Path, str | None]] = []
    for kind in _TINY_KINDS:
        if kind in _TINY_FAMILIES:
            folder = builders.build_causal_lm(kind, root / kind)
        elif kind == "st":
            folder = builders.build_sentence_transformers(root / "bert", root / "st", max_length=32, prompt="query: ")
        else:
            folder = builders.build_classifier(kind, root / kind)
        models.append((f"tiny {kind}", folder, _TINY_FAMILIES.get(kind)))
    return models, references


def _reference(references: Any, label: str, folder: Path, family: str, pairs: list[tuple[str, str]], max_length: int) -> np.ndarray | None:
    if references is None or not label.startswith("tiny "):
        return None
    if family == "qwen3-reranker":
        return references.qwen3_reference(folder, pairs)[0]
    if family == "bge-llm-reranker":
        return references.flag_llm_reference(folder, pairs)
    if family == "mxbai-rerank-v2":
        return references.mxbai_reference(folder, pairs)
    if family == "sentence-transformers":
        return references.cross_encoder_reference(folder, pairs)
    return references.classifier_reference(folder, pairs, max_length=max_length)


def _agreement(reference: np.ndarray, other: np.ndarray) -> float:
    i, j = np.triu_indices(len(reference), k=1)
    sign = np.sign(reference[i] - reference[j])
    counted = sign != 0
    return float(np.mean(np.sign(other[i] - other[j])[counted] == sign[counted])) if counted.any() else 1.0


def _measure(label: str, folder: Path, family: str | None, references: Any, device: str | None, scratch: Path) -> dict[str, Any]:
    from crossrank import Reranker
    from crossrank.config import RerankerConfig
    from crossrank.families.export import PROBE_PAIRS, export_model

    def reranker(model: Path, **options: Any) -> Any:
        return Reranker.from_config(RerankerConfig(model=str(model), family=options.pop("family", None), long_documents="truncate", allow_download=False, **options))

    torch_reranker = reranker(folder, backend="torch", family=family)
    loaded = torch_reranker.loaded
    # Pairs that fit the model's length: references truncate differently from crossrank's
    # query-safe truncation, so only untruncated pairs are compared with them.
    pairs = [pair for pair in PROBE_PAIRS if _fits(loaded.encoder, pair)]
    batched = torch_reranker.score(pairs, raw=True)
    alone = np.array([torch_reranker.score([pair], raw=True)[0] for pair in pairs])
    row: dict[str, Any] = {"model": label, "family": loaded.family.name, "max_length": loaded.encoder.max_length}
    reference = _reference(references, label, folder, loaded.family.name, pairs, loaded.encoder.max_length)
    row["reference"] = None if reference is None else float(np.abs(batched - reference).max())
    row["batch"] = float(np.abs(batched - alone).max())
    fp32 = export_model(folder, scratch / f"{label.replace(' ', '-')}-fp32", family=family)
    row["onnx"] = float(np.abs(reranker(fp32.folder).score(pairs, raw=True) - batched).max())
    try:
        int8 = export_model(folder, scratch / f"{label.replace(' ', '-')}-int8", quantize="int8", family=family, int8_tolerance=1e9, int8_agreement=0.0)
        int8_scores = reranker(int8.folder).score(pairs, raw=True)
        spread = float(np.ptp(batched)) or 1.0
        row["int8"] = (float(np.abs(int8_scores - batched).max()) / spread, _agreement(batched, int8_scores))
    except Exception as exc:  # noqa: BLE001 - recorded in the table rather than stopping the benchmark
        row["int8"] = f"failed: {type(exc).__name__}"
    row["half"] = {}
    if device is not None:
        for dtype in ("float16", "bfloat16"):
            half = reranker(folder, backend="torch", family=family, device=device, backend_options={"dtype": dtype}).score(pairs, raw=True)
            full = reranker(folder, backend="torch", family=family, device=device).score(pairs, raw=True)
            row["half"][dtype] = (float(np.abs(half - full).max()), _agreement(full, half))
    return row


def _fits(encoder: Any, pair: tuple[str, str]) -> bool:
    _, report = encoder.encode([pair[0]], [pair[1]], [0])
    return not (report.truncated_documents or report.truncated_queries)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return f"{value[0]:.1%} of spread, {value[1]:.0%} order kept"
    return f"{value:.1e}"


def run_families(args: argparse.Namespace) -> int:
    from crossrank.benchmarks import write_section
    from crossrank.errors import ConfigurationError

    device = args.device
    if device is None:
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else None
        except ImportError:
            device = None
    models: list[tuple[str, Path, str | None]] = []
    for spec in args.model:
        path, _, family = spec.partition("=")
        models.append((Path(path).name, Path(path), family or None))
    with tempfile.TemporaryDirectory(prefix="crossrank-families-") as scratch:
        references = None
        if args.tiny:
            tiny, references = _tiny_models(Path(args.repo).resolve(), Path(scratch) / "models")
            models = tiny + models
        if not models:
            raise ConfigurationError("nothing to measure: pass --tiny and/or --model FOLDER[=FAMILY]")
        rows = [_measure(label, folder, family, references, device, Path(scratch)) for label, folder, family in models]
    header = "| model | family | max_length | torch vs reference | batched vs alone | ONNX fp32 vs torch | int8 (per token) vs fp32 |"
    if device is not None:
        header += " float16 vs float32 | bfloat16 vs float32 |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        cells = [row["model"], f"`{row['family']}`", str(row["max_length"]), _cell(row["reference"]), _cell(row["batch"]), _cell(row["onnx"]), _cell(row["int8"])]
        if device is not None:
            cells += [_cell(row["half"].get("float16")), _cell(row["half"].get("bfloat16"))]
        lines.append("| " + " | ".join(cells) + " |")
    body = "\n".join(
        [
            "## Model families: score parity",
            "",
            "Max |difference| of raw scores on crossrank's probe pairs (those that fit the model's max_length, so no "
            "truncation rule is compared): crossrank on torch against the family's documented computation (transformers one pair at a time, "
            "`CrossEncoder.predict`, the Qwen3-Reranker model card, FlagEmbedding's and mxbai-rerank's formulas), one "
            "batched call against one call per pair, the `crossrank export` ONNX graph against torch, and the int8 graph "
            "(run per token) as a share of the fp32 scores' spread with the share of probe-pair orders it keeps"
            + (f"; on {device}, torch float16/bfloat16 against float32" if device is not None else "")
            + ". Tiny models are 2-layer random checkpoints (tests/families/family_models.py): their int8 figures are "
            "noisier than a trained model's.",
            "",
            *lines,
        ]
    )
    sys.stdout.write(body + "\n")
    if not args.no_write:
        write_section(args.section, body, path=args.output)
    return 0
