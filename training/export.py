"""After training: export ONNX, quantize int8, regression gate, calibrate on dev, model card, curves.

The finished folder ``<run>/model`` holds ``model.safetensors`` + ``config.json`` (fp32 torch),
``model.onnx`` (int8 dynamic; crossrank rewrites it to per-token quantization at load),
``tokenizer.json``, ``calibration.json``, ``crossrank.json``, ``README.md`` (model card) and
``training-curves.png``; it loads with ``Reranker(model=path)``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.errors import ConfigurationError, CrossRankError
from crossrank.models.files import atomic_write_text, sha256_file

__all__ = [
    "GateResult",
    "RegressionGateError",
    "calibration_feeds",
    "export_onnx",
    "finish_run",
    "float_matrix_products",
    "weight_matrix_products",
    "fit_dev_calibration",
    "held_out_no_answer",
    "quantize_int8",
    "quantize_for_config",
    "onnx_model_folder",
    "quantize_int8_static",
    "regression_gate",
    "f1_threshold",
]

logger = logging.getLogger("crossrank.training")


class RegressionGateError(CrossRankError):
    """The int8 model ranks dev queries worse than the fp32 model by more than the tolerance."""


@dataclass
class GateResult:
    """Dev nDCG@10 of the fp32 and int8 graphs; ``int8_scores`` and ``int8_scorer`` are the int8
    model's dev logits per query and its scorer settings, kept so the published model's calibration
    is fitted on the scores it will produce."""

    fp32_ndcg: float
    int8_ndcg: float
    tolerance: float
    int8_scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    int8_scorer: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.fp32_ndcg - self.int8_ndcg <= self.tolerance + 1e-12

    def to_dict(self) -> dict[str, Any]:
        return {"fp32_ndcg@10": self.fp32_ndcg, "int8_ndcg@10": self.int8_ndcg, "tolerance": self.tolerance, "passed": self.passed}


def export_onnx(
    model_dir: Path, target: Path, opset: int = 14, *, family: str | None = None, instruction: str | None = None,
    max_length: int | None = None,
) -> Path:
    """Export a checkpoint folder's score module to an fp32 ONNX graph, checked against PyTorch.

    The same code as ``crossrank export`` (:class:`crossrank.families.export.GraphExporter`):
    inputs by name, one ``logits`` output per row for every family; a graph whose scores on the
    probe pairs differ from the torch model's is refused and not written.

    Raises:
        crossrank.families.export.ExportParityError: the graph disagrees with PyTorch.
    """
    from crossrank.families.export import GraphExporter

    exporter = GraphExporter(
        model_dir, family=family, instruction=instruction, max_length=max_length, opset=opset, checkpoint=True,
        allow_download=False,
    )
    exporter.write_graph(Path(target))
    return Path(target)


_MATRIX_PRODUCTS = ("MatMul", "Gemm")


def weight_matrix_products(source: Path) -> list[str]:
    """Names of the matrix products with a weight matrix in the ONNX graph ``source``, in graph order.

    Only these are quantized; attention's products of two activations never are.
    """
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return [n.name for n in graph.node if n.op_type in _MATRIX_PRODUCTS and any(i in weights for i in n.input)]


def float_matrix_products(
    source: Path, patterns: Sequence[str], *, names: Sequence[str] | None = None, option: str = "quantize_exclude"
) -> list[str]:
    """Names of the weight matrix products of ``source`` matching any glob in ``patterns``.

    ``names`` are the graph's :func:`weight_matrix_products` when the caller already read them;
    ``option`` names the setting the patterns came from, for the error message.

    Raises:
        ConfigurationError: a pattern matches no weight matrix product (a typo would otherwise quantize
            everything and leave the gate to fail for a reason nobody asked about).
    """
    if not patterns:
        return []  # nothing to match: the graph need not be read
    if names is None:
        names = weight_matrix_products(source)
    matched: list[str] = []
    for pattern in patterns:
        hits = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
        if not hits:
            raise ConfigurationError(
                f"{option} pattern {pattern!r} matches no weight matrix product of {source}; "
                f"expected a glob over node names such as {list(names[:3])}"
            )
        matched.extend(name for name in hits if name not in matched)
    return matched


def quantize_int8(source: Path, target: Path, *, per_channel: bool = True, exclude: Sequence[str] = ()) -> Path:
    """ONNX Runtime dynamic int8 quantization (int8 weights, activations quantized at run time).

    ``per_channel`` gives each output column of a weight matrix its own scale instead of one
    scale per matrix; the nodes named in ``exclude`` stay float32.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=per_channel, nodes_to_exclude=list(exclude))
    return target


def quantize_int8_static(source: Path, target: Path, feeds: Sequence[Mapping[str, np.ndarray]], *, exclude: Sequence[str] = ()) -> Path:
    """ONNX Runtime static int8 quantization (QDQ, per-channel weights).

    Activation ranges come from running ``feeds`` (one encoded pair each, see
    :func:`calibration_feeds`) through the fp32 graph, so nothing is measured at run time and a
    pair's score never depends on the rest of its batch.
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not feeds:
        raise CrossRankError("static quantization needs at least one calibration pair")

    class _Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self._rows = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            row = next(self._rows, None)
            return None if row is None else dict(row)

    quantize_static(
        str(source), str(target), _Feeds(),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        # LayerNorm, softmax and GELU stay in float: only the matrix products are quantized.
        op_types_to_quantize=list(_MATRIX_PRODUCTS),
        nodes_to_exclude=list(exclude),
        calibrate_method=CalibrationMethod.MinMax,
    )
    return target


def quantize_for_config(
    config: Any, fp32: Path, target: Path, exclude: Sequence[str], data: Any, train_qids: Sequence[str], tokenizer: Path,
    encoder: Any = None,
) -> tuple[str, dict[str, Any]]:
    """Quantize ``fp32`` to ``target`` as a training config asks; returns the quantization label
    (``"dynamic-int8"`` or ``"static-int8"``) and the settings to record in the run's metrics.
    ``encoder`` encodes static calibration pairs as the model's family does (default: the
    tokenizer's pair template)."""
    if config.quantization == "static":
        pairs = _static_calibration_pairs(data, train_qids, config.static_calibration_pairs, config.seed)
        feeds = calibration_feeds(tokenizer, pairs, config.max_length, encoder=encoder, inputs=_graph_inputs(fp32))
        quantize_int8_static(fp32, target, feeds, exclude=exclude)
        return "static-int8", {"static_calibration_pairs": len(pairs)}
    quantize_int8(fp32, target, per_channel=config.per_channel_weights, exclude=exclude)
    return "dynamic-int8", {"per_channel_weights": config.per_channel_weights}


def calibration_feeds(
    tokenizer: Path, pairs: Sequence[tuple[str, str]], max_length: int, *, encoder: Any = None,
    inputs: Sequence[str] = ("input_ids", "attention_mask", "token_type_ids"),
) -> list[dict[str, np.ndarray]]:
    """Encode (query, passage) pairs one per feed, as the exported graph takes them (only its ``inputs``)."""
    from crossrank.encoding import PairEncoder

    if encoder is None:
        encoder = PairEncoder.from_file(tokenizer, max_length=max_length)
    queries = sorted({q for q, _ in pairs})
    index = {q: i for i, q in enumerate(queries)}
    segments, _ = encoder.encode(queries, [d for _, d in pairs], [index[q] for q, _ in pairs])
    feeds = []
    for s in segments:
        row = {
            "input_ids": np.asarray([s.input_ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(s.input_ids)), dtype=np.int64),
            "token_type_ids": np.asarray([s.token_type_ids], dtype=np.int64),
        }
        feeds.append({name: row[name] for name in inputs if name in row})
    return feeds


def _graph_inputs(graph: Path) -> list[str]:
    import onnx

    return [i.name for i in onnx.load(str(graph), load_external_data=False).graph.input]


def _static_calibration_pairs(data: Any, train_qids: Sequence[str], count: int, seed: int) -> list[tuple[str, str]]:
    """Seeded training pairs: each sampled query with one of its positives and one random passage."""
    rng = np.random.default_rng(seed)
    qids = [q for q in train_qids if data.positives(q)]
    corpus_ids = sorted(data.corpus)
    pairs: list[tuple[str, str]] = []
    for qid in (qids[i] for i in rng.permutation(len(qids))):
        positives = sorted(data.positives(qid))
        pairs.append((data.queries[qid], data.corpus[positives[int(rng.integers(len(positives)))]]))
        pairs.append((data.queries[qid], data.corpus[corpus_ids[int(rng.integers(len(corpus_ids)))]]))
        if len(pairs) >= count:
            break
    return pairs[:count]


# Files beside a tokenizer that say how pairs are encoded (special tokens, a CrossEncoder's prompt
# and length, the position table); copied with it so the ONNX folder encodes like the checkpoint.
_ENCODING_FILES = (
    "config.json", "tokenizer_config.json", "special_tokens_map.json", "config_sentence_transformers.json",
    "sentence_bert_config.json", "modules.json",
)


def onnx_model_folder(
    folder: Path, onnx_file: Path, tokenizer: Path, quantization: str, *, family: str | None = None,
    instruction: str | None = None,
) -> Path:
    """A folder that ``Reranker(model=folder)`` loads: the graph, its tokenizer and ``crossrank.json``
    (recording the model's ``family`` and ``instruction``, when given)."""
    from crossrank.models.config import ModelConfig

    folder.mkdir(parents=True, exist_ok=True)
    if onnx_file.parent != folder:
        shutil.copy(onnx_file, folder / "model.onnx")
    shutil.copy(tokenizer, folder / "tokenizer.json")
    for name in _ENCODING_FILES:
        if (tokenizer.parent / name).is_file() and tokenizer.parent != folder:
            shutil.copy(tokenizer.parent / name, folder / name)
    ModelConfig(name=folder.name, onnx_file="model.onnx", quantization=quantization, family=family, instruction=instruction).save(folder)
    return folder


def _dev_scores_with_reranker(
    model_dir: Path, dev_data: Any, candidates: Mapping[str, list[str]], max_length: int,
    backend_options: Mapping[str, Any] | None = None,
) -> tuple[float, dict[str, np.ndarray], dict[str, Any]]:
    """Dev nDCG@10, dev logits per query and the scorer settings of ``Reranker(model_dir)``."""
    from crossrank.training.trainer import evaluate_dev

    from crossrank import Reranker

    from crossrank.config import RerankerConfig
    from crossrank.evaluation.cache import scorer_settings

    reranker = Reranker.from_config(
        RerankerConfig(model=str(model_dir), backend="onnx", max_length=max_length, allow_download=False,
                       backend_options=dict(backend_options or {}))
    )
    try:
        value, scores = evaluate_dev(lambda pairs: np.asarray(reranker.score(pairs, raw=True)), dev_data, candidates)
        settings = scorer_settings(reranker)
    finally:
        reranker.close()
    return value, scores, settings


def regression_gate(
    fp32_dir: str | Path, int8_dir: str | Path, dev_data: Any, candidates: Mapping[str, list[str]], *, tolerance: float = 0.01, max_length: int = 256,
    activation_quantization: str = "per-token",
) -> GateResult:
    """Compare dev nDCG@10 of the fp32 and int8 ONNX models; raise if int8 loses more than ``tolerance``.

    A dynamic int8 model is scored with ``activation_quantization`` (``per-token`` or
    ``per-tensor``), the way it will run.

    Raises:
        RegressionGateError: ``fp32 - int8 > tolerance``.
    """
    fp32_ndcg, _, _ = _dev_scores_with_reranker(Path(fp32_dir), dev_data, candidates, max_length)
    options = {"activation_quantization": activation_quantization} if activation_quantization == "per-tensor" else {}
    int8_ndcg, int8_scores, int8_scorer = _dev_scores_with_reranker(Path(int8_dir), dev_data, candidates, max_length, options)
    result = GateResult(fp32_ndcg=fp32_ndcg, int8_ndcg=int8_ndcg, tolerance=float(tolerance),
                        int8_scores=int8_scores, int8_scorer=int8_scorer)
    if not result.passed:
        raise RegressionGateError(
            f"regression gate failed: int8 dev nDCG@10 {result.int8_ndcg:.4f} is more than {tolerance} below "
            f"fp32 {result.fp32_ndcg:.4f}; the quantized model was not published. Keeping the most sensitive "
            "matrix products in float (quantize_exclude) or static quantization may pass; resuming the run "
            "with changed export settings redoes only the export"
        )
    return result


def fit_dev_calibration(
    scores: Mapping[str, np.ndarray], dev_data: Any, candidates: Mapping[str, list[str]], kind: str, scorer: Mapping[str, Any] | None = None
) -> Any:
    """Fit a calibrator on dev logits (label: judged relevant) and return a ``Calibration``.

    ``scorer`` (settings of the model that produced ``scores``) goes into the provenance, so a
    reranker scoring with other settings can say its probabilities are approximate.
    """
    from crossrank.calibration import Calibration, fit_calibrator

    logits, labels = [], []
    for qid, docs in candidates.items():
        judged = dev_data.qrels.get(qid, {})
        logits.extend(float(v) for v in scores[qid])
        labels.extend(1.0 if judged.get(d, 0) > 0 else 0.0 for d in docs)
    calibrator = fit_calibrator(kind, logits, labels)
    threshold, f1 = f1_threshold(calibrator.transform(np.asarray(logits, dtype=np.float64)), labels)
    return Calibration(
        calibrator=calibrator,
        threshold=threshold,
        provenance={
            "fitted_on": "training run dev split", "pairs": len(logits), "positives": int(sum(labels)),
            **({"threshold": {"rule": "best F1 of keeping judged-relevant dev pairs", "f1": f1}} if threshold is not None else {}),
            **({"scorer": dict(scorer)} if scorer else {}),
        },
    )


def f1_threshold(probabilities: Sequence[float] | np.ndarray, labels: Sequence[float]) -> tuple[float | None, float | None]:
    """The probability threshold whose kept pairs (``p >= t``) have the best F1 against ``labels``.

    Ties go to the lower threshold. ``(None, None)`` when no label is positive.

    Example:
        >>> f1_threshold([0.9, 0.8, 0.3, 0.2], [1, 1, 0, 1])
        (0.2, 0.857...)
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64) > 0
    if p.shape != y.shape:
        raise CrossRankError(f"need one label per probability; received {p.size} and {y.size}")
    positives = int(y.sum())
    if positives == 0:
        return None, None
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    last = np.flatnonzero(np.r_[p[1:] != p[:-1], True])  # last index of each run of equal probabilities
    kept = last + 1
    true_kept = np.cumsum(y)[last]
    f1 = 2 * true_kept / (kept + positives)
    best = int(np.flatnonzero(f1 >= f1.max() - 1e-12)[-1])
    return float(np.clip(p[last[best]], 0.0, 1.0)), float(f1[best])


def _plot_curves(history: list[dict[str, Any]], target: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["dev_ndcg@10"]) for h in history if "dev_ndcg@10" in h]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if losses:
        left.plot(*zip(*losses), linewidth=1)
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.set_title("training loss")
    if evals:
        right.plot(*zip(*evals), marker="o")
    right.set_xlabel("step")
    right.set_ylabel("dev nDCG@10")
    right.set_title("dev nDCG@10")
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target


def held_out_no_answer(metrics: Mapping[str, Any]) -> str:
    """``", plus N held-out no-answer queries ..."`` for a run that held some out, else ``""``.

    They never enter dev nDCG@10 (it needs a relevant document); they are kept for fitting abstention.
    """
    held = metrics.get("dev_no_answer_queries") or 0
    return f", plus {held} held-out no-answer {'query' if held == 1 else 'queries'} for fitting abstention" if held else ""


def _model_card(config: Any, metrics: Mapping[str, Any], base_config: Any, data_report: Mapping[str, Any]) -> str:
    gate = metrics.get("gate") or {}
    lines = [
        f"# {metrics['name']}",
        "",
        "A cross-encoder reranker fine-tuned with `crossrank train`.",
        "",
        *(
            ["**No training step improved dev nDCG@10: these are the start weights, re-exported.**", ""]
            if metrics.get("best_step") == 0
            else []
        ),
        "| | |",
        "|---|---|",
        f"| base model | `{config.base_model}` ({base_config.name}@{base_config.revision}) |",
        f"| base model license | {base_config.license or 'see the base model'} |",
        f"| training data | {config.data.format} `{config.data.path}` (split `{config.data.split}`) |",
        f"| data license | {config.data_license or 'see the data source'} |",
        f"| rows read / skipped | {data_report.get('rows')} / {data_report.get('skipped')} |",
        f"| train / dev queries | {metrics['train_queries']} / {metrics['dev_queries']}{held_out_no_answer(metrics)} (query-grouped, `splits.json`) |",
        f"| negatives | {config.negatives.strategy} ({json.dumps(config.negatives.__dict__)}) |",
        f"| loss | {config.loss}" + (f" after {config.curriculum.warmup_loss} for {config.curriculum.warmup_steps} steps" if config.curriculum else "") + " |",
        f"| steps / best step | {metrics['steps']} / {metrics['best_step']} |",
        f"| dev nDCG@10 before -> after (fp32 torch) | {metrics['dev_ndcg_before']:.4f} -> {metrics['dev_ndcg_after']:.4f} |",
    ]
    if gate:
        kind = metrics.get("quantization", "dynamic-int8")
        if metrics.get("static_calibration_pairs"):
            kind += f", activation ranges from {metrics['static_calibration_pairs']} training pairs"
        if metrics.get("float_matrix_products"):
            kind += f", {len(metrics['float_matrix_products'])} matrix products kept in float32 (`quantize_exclude`)"
        lines.append(f"| dev nDCG@10 fp32 ONNX / int8 ONNX ({kind}) | {gate['fp32_ndcg@10']:.4f} / {gate['int8_ndcg@10']:.4f} (tolerance {gate['tolerance']}) |")
    if metrics.get("calibration"):
        lines.append(f"| calibration | {json.dumps(metrics['calibration'])} fitted on the published model's dev scores |")
    if metrics.get("threshold") is not None:
        lines.append(f"| threshold (`threshold=\"calibrated\"`) | {metrics['threshold']:.4f}: best F1 of keeping judged-relevant dev pairs |")
    if metrics.get("family"):
        lines.append(f"| model family | `{metrics['family']}`" + (f", instruction \"{config.instruction}\"" if config.instruction else "") + " |")
    lines += [
        f"| time for data, mining, training and dev evaluations | {metrics['train_seconds']:.0f} s |",
        "",
        "Dev figures are measured on the held-out dev queries of the training data, not on a test set.",
        "",
        "![training curves](training-curves.png)",
        "",
    ]
    return "\n".join(lines)


def finish_run(
    config: Any, run_dir: Path, base_dir: Path, data: Any, dev_data: Any, candidates: Mapping[str, list[str]],
    history: list[dict[str, Any]], state: Mapping[str, Any], train_seconds: float,
) -> Any:
    """Turn the best checkpoint into the finished, calibrated, quantized and gated model folder."""
    from crossrank.training.trainer import TrainResult, _Model, evaluate_dev

    from crossrank.calibration import save_calibration
    from crossrank.models.config import ModelConfig

    best = run_dir / "best"
    model_dir = run_dir / "model"
    tmp = run_dir / ".model.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(best, tmp)
    model = _Model(best, config, for_training=False)
    after, dev_scores = evaluate_dev(model.score, dev_data, candidates)
    split = json.loads((run_dir / "splits.json").read_text())
    metrics: dict[str, Any] = {
        "name": config.name or Path(config.output_dir).name,
        "dev_ndcg_before": state.get("before", history[0].get("dev_ndcg@10") if history else None),
        "dev_ndcg_after": after,
        "best_step": state.get("best_step"),
        "steps": state.get("global_step"),
        "train_queries": len(split["train"]),
        "dev_queries": len(candidates),
        "dev_no_answer_queries": len(split.get("dev_no_answer", [])),
        "train_seconds": train_seconds,
    }
    # Logits of the published graph are what the calibration will map; the torch model's dev
    # logits stand in only when no int8 graph is published.
    calibration_scores: Mapping[str, np.ndarray] = dev_scores
    calibration_scorer: dict[str, Any] = {"model": "fp32 torch checkpoint", "max_length": config.max_length, "long_documents": "truncate"}
    quantization = "none"
    onnx_file = None
    family, instruction = model.family.name, config.instruction
    if config.export_onnx:
        export_dir = run_dir / "export"
        fp32 = export_onnx(best, export_dir / "fp32" / "model.onnx", family=family, instruction=instruction, max_length=config.max_length)
        onnx_model_folder(export_dir / "fp32", fp32, best / "tokenizer.json", "none", family=family, instruction=instruction)
        onnx_file = "model.onnx"
        if config.quantize:
            kept_float = float_matrix_products(fp32, config.quantize_exclude)
            if kept_float:
                metrics["float_matrix_products"] = kept_float
            train_qids = json.loads((run_dir / "splits.json").read_text())["train"]
            quantization, settings = quantize_for_config(
                config, fp32, tmp / "model.onnx", kept_float, data, train_qids, best / "tokenizer.json", encoder=model.encoder
            )
            metrics.update(settings)
            onnx_model_folder(export_dir / "int8", tmp / "model.onnx", best / "tokenizer.json", quantization, family=family, instruction=instruction)
            metrics["quantization"] = quantization
            try:
                gate = regression_gate(
                    export_dir / "fp32", export_dir / "int8", dev_data, candidates,
                    tolerance=config.gate_tolerance, max_length=config.max_length,
                    activation_quantization=config.activation_quantization if quantization == "dynamic-int8" else "per-token",
                )
            except RegressionGateError:
                atomic_write_text(run_dir / "metrics.json", json.dumps({**metrics, "gate": "failed"}, indent=1) + "\n")
                raise
            metrics["gate"] = gate.to_dict()
            calibration_scores, calibration_scorer = gate.int8_scores, gate.int8_scorer
        else:
            shutil.copy(fp32, tmp / "model.onnx")
    calibration = fit_dev_calibration(calibration_scores, dev_data, candidates, config.calibrator, calibration_scorer)
    metrics["calibration"] = calibration.calibrator.to_dict()
    metrics["threshold"] = calibration.threshold
    metrics["family"] = family
    base_config = ModelConfig.load(base_dir)
    from crossrank.families import ModelFiles, model_lengths

    limit = model_lengths(ModelFiles.read(best), base_config.max_length)[0]
    files = {name: sha256_file(tmp / name) for name in ("model.safetensors", "model.onnx", "tokenizer.json") if (tmp / name).is_file()}
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    # The revision names the published files, not the time of the export: redoing an export that
    # yields the same weights keeps the revision, so score caches keyed by it stay valid.
    content = hashlib.sha256(json.dumps(files, sort_keys=True).encode("utf-8")).hexdigest()
    revision = f"trained-{content[:16]}"
    # The dev scores came from these same files in a scratch folder: the calibration names the
    # published model, so it applies to it (and sets its default max_length, see prepare_model).
    scorer = dict(calibration.provenance.get("scorer") or {})
    scorer["model"] = f"{metrics['name']}@{revision}"
    scorer.pop("model_fingerprint", None)  # the scratch folder's, not the published one's
    calibration = replace(calibration, provenance={**calibration.provenance, "scorer": scorer})
    save_calibration(calibration, tmp / "calibration.json")
    ModelConfig(
        name=metrics["name"],
        onnx_file=onnx_file,
        torch_weights="model.safetensors",
        revision=revision,
        max_length=min(limit, 512),
        quantization=quantization,
        license=base_config.license,
        origin=f"crossrank train from {config.base_model}",
        files=files,
        family=family,
        instruction=instruction,
        extra={"base_model": f"{base_config.name}@{base_config.revision}", "loss": config.loss, "data": config.data.to_dict(), "exported": stamp},
    ).save(tmp)
    _plot_curves(history, tmp / "training-curves.png")
    data_report = json.loads((run_dir / "data-report.json").read_text())["train"]
    (tmp / "README.md").write_text(_model_card(config, metrics, base_config, data_report), encoding="utf-8")
    if model_dir.exists():
        shutil.rmtree(model_dir)
    tmp.rename(model_dir)
    shutil.copy(model_dir / "training-curves.png", run_dir / "training-curves.png")
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    if config.domain:
        from crossrank.models.domains import register_domain

        register_domain(config.domain, model_dir, base_model=config.base_model, metrics=metrics)
    profile = getattr(config, "profile", None)
    if profile:
        from crossrank.models.profiles import register_profile

        register_profile(profile, model_dir, base_model=config.teacher or config.base_model, metrics=metrics)
    logger.info("finished %s: dev nDCG@10 %.4f -> %.4f", model_dir, metrics["dev_ndcg_before"], after)
    return TrainResult(run_dir=run_dir, model_dir=model_dir, metrics=metrics, history=history)
