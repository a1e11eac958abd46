"""Which layers lose the most in int8: dev nDCG@10 with one group of matrix products kept in float.

When the regression gate refuses a run's int8 export, the usual cause is a few layers whose
weights or activations quantize badly. :func:`scan_float_groups` re-quantizes the run's fp32
export once per encoder layer (and once for everything outside the layers: pooler and head),
each time keeping that group in float32, and scores the run's dev candidates with each graph,
so ``quantize_exclude`` can be chosen from measurements. Given ``products`` (a glob over node
names, e.g. one layer's ``"/bert/encoder/layer.2/*"``), it scans those matrix products one at a
time instead: a single product kept in float costs less speed than a whole layer. The scan uses
the dev split the gate uses: a group chosen this way passes the gate partly by selection, so
check the finished model on held-out test data as well.

Example:
    >>> from crossrank.training.quantization_scan import scan_float_groups
    >>> scan = scan_float_groups(load_config("train.yaml"))  # doctest: +SKIP
    >>> [(row.group, row.int8_ndcg) for row in scan.rows]  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import json
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigurationError

__all__ = ["FloatGroupResult", "QuantizationScan", "float_groups", "product_groups", "scan_float_groups"]

_LAYER = re.compile(r"^(.*/layer\.(\d+)/)")


@dataclass
class FloatGroupResult:
    """Dev nDCG@10 of the int8 graph with ``group`` kept in float (``group`` "none": all int8)."""

    group: str
    patterns: list[str]
    products: int
    int8_ndcg: float


@dataclass
class QuantizationScan:
    fp32_ndcg: float
    tolerance: float
    quantization: str
    rows: list[FloatGroupResult] = field(default_factory=list)

    def passes(self, row: FloatGroupResult) -> bool:
        from crossrank.training.export import GateResult

        return GateResult(fp32_ndcg=self.fp32_ndcg, int8_ndcg=row.int8_ndcg, tolerance=self.tolerance).passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "fp32_ndcg@10": self.fp32_ndcg, "tolerance": self.tolerance, "quantization": self.quantization,
            "rows": [{**asdict(row), "drop": self.fp32_ndcg - row.int8_ndcg, "passes_gate": self.passes(row)} for row in self.rows],
        }

    def markdown(self) -> str:
        lines = [
            f"fp32 ONNX dev nDCG@10: {self.fp32_ndcg:.4f}; gate tolerance {self.tolerance}; {self.quantization} int8.",
            "",
            "| kept in float32 | `quantize_exclude` | matrix products in float | int8 dev nDCG@10 | int8 - fp32 | gate |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            patterns = ", ".join(f"`{p}`" for p in row.patterns) or "–"
            lines.append(
                f"| {row.group} | {patterns} | {row.products} | {row.int8_ndcg:.4f} | {row.int8_ndcg - self.fp32_ndcg:+.4f} | "
                f"{'passes' if self.passes(row) else 'refuses'} |"
            )
        return "\n".join(lines)


def float_groups(products: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``(label, patterns)`` per encoder layer, then one for the products outside the layers.

    ``products`` are the graph's weight matrix products (:func:`~crossrank.training.export.weight_matrix_products`).
    """
    layers: dict[int, str] = {}
    others: list[str] = []
    for name in products:
        match = _LAYER.match(name)
        if match:
            layers.setdefault(int(match.group(2)), match.group(1))
        else:
            others.append(name)
    groups = [(f"layer {index}", [glob.escape(prefix) + "*"]) for index, prefix in sorted(layers.items())]
    if others:
        groups.append(("outside the layers (" + ", ".join(others) + ")", [glob.escape(name) for name in others]))
    return groups


def product_groups(source: Path, products: Sequence[str], pattern: str) -> list[tuple[str, list[str]]]:
    """``(name, [escaped name])`` for each weight matrix product of ``source`` matching ``pattern``.

    ``products`` are the graph's :func:`~crossrank.training.export.weight_matrix_products`.

    Raises:
        ConfigurationError: ``pattern`` matches none of ``products``.
    """
    from crossrank.training.export import float_matrix_products

    hits = float_matrix_products(source, [pattern], names=products, option="--products")
    return [(name, [glob.escape(name)]) for name in hits]


def scan_float_groups(
    config: Any, *, products: str | None = None, log: Callable[[str], None] = lambda line: None
) -> QuantizationScan:
    """Quantize the run's fp32 export once per group kept in float and score the dev candidates.

    Groups are the encoder layers and the products outside them, or with ``products`` (a glob
    over node names) each matching weight matrix product on its own.

    Raises:
        ConfigurationError: the run folder has no fp32 export or dev candidates yet (train first;
            a run the gate refused has both), or ``products`` matches no weight matrix product.
    """
    from crossrank.training.data import load_data
    from crossrank.training.export import (
        _dev_scores_with_reranker,
        float_matrix_products,
        onnx_model_folder,
        quantize_for_config,
        weight_matrix_products,
    )

    run_dir = Path(config.output_dir)
    fp32_dir = run_dir / "export" / "fp32"
    needed = [fp32_dir / "model.onnx", fp32_dir / "tokenizer.json", run_dir / "dev-candidates.json", run_dir / "splits.json"]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise ConfigurationError(
            f"a quantization scan needs a trained run with an fp32 export; missing {missing}. "
            "Run `crossrank train` (or `crossrank distill`) on this config first."
        )
    data = load_data(config.data)
    dev_data = load_data(config.dev_data) if config.dev_data is not None else data
    candidates = json.loads((run_dir / "dev-candidates.json").read_text())
    train_qids = json.loads((run_dir / "splits.json").read_text())["train"]
    fp32 = fp32_dir / "model.onnx"
    names = weight_matrix_products(fp32)
    groups = product_groups(fp32, names, products) if products is not None else float_groups(names)
    fp32_ndcg, _, _ = _dev_scores_with_reranker(fp32_dir, dev_data, candidates, config.max_length)
    log(f"fp32: dev nDCG@10 {fp32_ndcg:.4f}")
    scan = QuantizationScan(fp32_ndcg=fp32_ndcg, tolerance=float(config.gate_tolerance), quantization=config.quantization)
    with tempfile.TemporaryDirectory(prefix="crossrank-qscan-") as tmp:
        for number, (label, patterns) in enumerate([("none", [])] + groups):
            kept = float_matrix_products(fp32, patterns, names=names)
            graph = Path(tmp) / f"{number}.onnx"
            quantization, _ = quantize_for_config(config, fp32, graph, kept, data, train_qids, fp32_dir / "tokenizer.json")
            folder = onnx_model_folder(Path(tmp) / f"model-{number}", graph, fp32_dir / "tokenizer.json", quantization)
            ndcg, _, _ = _dev_scores_with_reranker(folder, dev_data, candidates, config.max_length)
            scan.rows.append(FloatGroupResult(group=label, patterns=list(patterns), products=len(kept), int8_ndcg=ndcg))
            log(f"{label}: {len(kept)} products in float, dev nDCG@10 {ndcg:.4f}")
    return scan
