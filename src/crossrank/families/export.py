"""ONNX export for every family, refused when the graph disagrees with PyTorch.

:class:`GraphExporter` traces a model's score module (the one the torch backend scores with and
the trainer fine-tunes) into an ONNX graph: inputs bound by name (``input_ids``,
``attention_mask`` and ``token_type_ids`` only where the model takes them), no key/value cache,
one output ``logits`` of shape ``(rows, 1)`` holding the raw score; language-model families are
exported as these one-logit graphs, not as full vocabularies. Before a graph is written it is run
with ONNX Runtime on probe pairs, batched (right-padded) and one pair at a time, and compared with
the torch module: a graph whose scores differ by more than the tolerance is refused
(:class:`ExportParityError`) and nothing is written.

``int8`` export quantizes the verified graph dynamically (int8 weights per output column); crossrank
rewrites it to per-token activation scales when it loads it (see :mod:`crossrank.quantization`),
and the gate compares those int8 scores with the fp32 ones on the probes (:class:`Int8GateError`
when the order of the probes or their scores move more than allowed).

``crossrank export`` and the trainer's export both use this code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.errors import ConfigurationError, CrossRankError, ModelNotFoundError, missing_dependency

__all__ = [
    "EXPORT_QUANTIZATION",
    "ExportParityError",
    "ExportResult",
    "GraphExporter",
    "Int8GateError",
    "Int8Report",
    "ParityReport",
    "PROBE_PAIRS",
    "export_model",
]

logger = logging.getLogger("crossrank")

EXPORT_QUANTIZATION = ("none", "int8")
DEFAULT_TOLERANCE = 1e-3
DEFAULT_INT8_TOLERANCE = 0.1
DEFAULT_INT8_AGREEMENT = 0.9
# Folder files that say how to encode and score: copied next to the graph when present.
_SIDE_FILES = (
    "config.json", "tokenizer_config.json", "special_tokens_map.json", "config_sentence_transformers.json",
    "sentence_bert_config.json", "modules.json", "README.md", "calibration.json", "LICENSE", "NOTICE.md",
)

_LONG = (
    "The river flows through the old city, past the museum and the cathedral, under seven bridges, and on to the "
    "sea. Many people live along its banks; in summer the water is warm and in winter it sometimes freezes. "
) * 6
PROBE_PAIRS: tuple[tuple[str, str], ...] = (
    ("what is the capital of france", "Paris is the capital and largest city of France."),
    ("what is the capital of france", "Berlin is the capital of Germany."),
    ("how many people live in paris", "About two million people live in the city of Paris."),
    ("how many people live in paris", "Cats and dogs are popular pets around the world."),
    ("why is the sky blue", "Sunlight is scattered by the molecules of the air, and blue light is scattered most."),
    ("why is the sky blue", "The recipe needs two eggs, flour and a cup of milk."),
    ("protein folding", "How a protein folds in the cell depends on its amino-acid sequence, encoded by a gene."),
    ("river", _LONG),
    ("東京は日本の首都ですか", "東京は日本の首都です。大阪は大きな都市です。"),
    ("Wo liegt Berlin?", "Berlin liegt an der Spree und ist die Hauptstadt Deutschlands."),
    ("capital", "capital"),
    ("a much longer question about where the largest river of the continent begins and where it ends", "It begins in the mountains."),
)
"""Pairs every export is checked on: relevant and irrelevant, short and long (truncated), several scripts."""


class ExportParityError(CrossRankError):
    """The exported graph's scores differ from the PyTorch model's by more than the tolerance."""


class Int8GateError(CrossRankError):
    """The int8 graph reorders the probe pairs or moves their scores more than allowed."""


@dataclass(frozen=True)
class ParityReport:
    """How an ONNX graph's raw scores compare with the torch module's on the probe pairs.

    ``max_abs_diff`` is over the batched run and the one-pair-at-a-time runs; a pair passes when
    its difference is at most ``tolerance * max(1, |torch score|)``.
    """

    max_abs_diff: float
    worst_pair: int
    pairs: int
    tolerance: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Int8Report:
    """The int8 graph (rewritten per token, as crossrank runs it) against the fp32 torch scores.

    ``agreement`` is the share of probe pairs (i, j) whose order the int8 scores keep;
    ``max_abs_diff`` is relative to the spread of the fp32 scores when ``relative`` is True.
    """

    max_abs_diff: float
    spread: float
    relative_diff: float
    agreement: float
    tolerance: float
    min_agreement: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    folder: Path
    family: str
    instruction: str | None
    max_length: int
    quantization: str
    fp32: ParityReport
    int8: Int8Report | None = None
    files: dict[str, str] = field(default_factory=dict)


def _settings(model: str, **options: Any) -> Any:
    from crossrank.config import RerankerConfig

    return RerankerConfig(model=model, backend="torch", long_documents="truncate", **options)


class GraphExporter:
    """Exports one model's score module to ONNX and checks the graph against PyTorch.

    Args:
        model: A model folder or name (as ``Reranker(model=...)`` takes it) with safetensors weights.
        family: The model family (default: as the engine chooses it).
        instruction: The instruction of an instruction-aware family's prompt (recorded, not traced:
            the prompt is part of the encoding, not of the graph).
        max_length: Tokens per probe row and the recorded default (default: the model's).
        opset: ONNX opset of the graph.
        tolerance: Largest allowed ``|onnx - torch| / max(1, |torch|)`` on the probe pairs.
        probes: The (query, document) pairs the graph is checked on.
        trust_remote_code: Run the folder's own modelling code.
        plugin_manager: Where families are registered (default: the process-wide manager).
        allow_download: Whether a model name may be fetched.
        checkpoint: Read ``model`` as a plain Hugging Face checkpoint folder (a training run's
            weights): its ``crossrank.json``, if any, is not read and no recorded hash is checked.

    Subclasses may override :meth:`trace` (how the graph is produced); :meth:`write_graph`
    verifies whatever it produced before writing it.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        family: str | None = None,
        instruction: str | None = None,
        max_length: int | None = None,
        opset: int = 17,
        tolerance: float = DEFAULT_TOLERANCE,
        probes: Sequence[tuple[str, str]] = PROBE_PAIRS,
        trust_remote_code: bool = False,
        plugin_manager: Any = None,
        allow_download: bool = True,
        checkpoint: bool = False,
    ) -> None:
        from crossrank.engine.loading import prepare_model

        if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not tolerance > 0:
            raise ConfigurationError(f"tolerance must be a number > 0; received {tolerance!r}")
        if not probes:
            raise ConfigurationError("export needs at least one probe pair to check the graph on")
        resolved = None
        if checkpoint:
            from crossrank.models.config import ModelConfig
            from crossrank.models.resolve import ResolvedModel

            folder = Path(model)
            resolved = ResolvedModel(folder, ModelConfig.detect(folder, name=folder.name), "local")
        self.prepared = prepare_model(
            _settings(str(model), family=family, instruction=instruction, max_length=max_length, allow_download=allow_download),
            plugin_manager,
            resolved=resolved,
        )
        config = self.prepared.config
        if config.torch_weights is None:
            raise ModelNotFoundError(
                f"{self.prepared.path} has no safetensors weights to export (only {config.onnx_file}); "
                "export needs the PyTorch checkpoint"
            )
        self.explicit_instruction = instruction
        self.opset = opset
        self.tolerance = float(tolerance)
        self.probes = [(str(q), str(d)) for q, d in probes]
        self.trust_remote_code = trust_remote_code
        self._module: Any = None

    @property
    def family(self) -> Any:
        return self.prepared.family

    @property
    def max_length(self) -> int:
        return self.prepared.encoder.max_length

    # ------------------------------------------------------------------ torch side
    def module(self) -> Any:
        """The score module traced (fp32, eager attention so the trace holds plain operators)."""
        if self._module is None:
            tokenizer = None
            if self.family.kind != "classifier":
                from crossrank.families.decoder import load_tokenizer

                tokenizer = load_tokenizer(self.prepared.path / self.prepared.config.tokenizer_file)
            try:
                import torch  # noqa: F401
            except ImportError:
                raise missing_dependency("torch and transformers", "torch", "ONNX export") from None
            self._module = self.family.torch_module(
                self.prepared.files, trust_remote_code=self.trust_remote_code, tokenizer=tokenizer,
                attn_implementation="eager",
            ).eval()
        return self._module

    def probe_rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The probe pairs encoded as the engine encodes them: ``(input_ids, token_type_ids)`` per row."""
        queries = sorted({q for q, _ in self.probes})
        index = {q: i for i, q in enumerate(queries)}
        segments, _ = self.prepared.encoder.encode(queries, [d for _, d in self.probes], [index[q] for q, _ in self.probes])
        return [(s.input_ids, s.token_type_ids) for s in segments]

    def probe_batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The probe rows right-padded into one batch (padding is part of what is checked)."""
        from crossrank.batching import pad_batch

        return pad_batch(self.probe_rows(), self.prepared.encoder.pad_id)

    def torch_scores(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        import torch

        module = self.module()
        feeds = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}
        if "token_type_ids" in module.input_names:
            feeds["token_type_ids"] = torch.from_numpy(token_type_ids)
        with torch.inference_mode():
            return module(**feeds).float().numpy().astype(np.float64)

    # ------------------------------------------------------------------ graph
    def trace(self, path: Path) -> None:
        """Write the fp32 graph of :meth:`module` to ``path`` (traced on the padded probe batch)."""
        import torch

        module = self.module()
        names = list(module.input_names)
        input_ids, attention_mask, token_type_ids = self.probe_batch()
        arrays = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        args = tuple(torch.from_numpy(arrays[name]) for name in names)
        dynamic = {0: "batch", 1: "sequence"}
        import warnings

        module.as_graph = True
        try:
            with warnings.catch_warnings():
                # Tracing warns about Python values it treats as constants; the parity check decides.
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module, args, str(path), input_names=names, output_names=["logits"],
                    dynamic_axes={**{name: dynamic for name in names}, "logits": {0: "batch"}},
                    opset_version=self.opset, dynamo=False,
                )
        finally:
            module.as_graph = False

    def verify(self, graph: Path) -> ParityReport:
        """Run ``graph`` on the probes (batched and one at a time) against the torch module.

        Raises:
            ExportParityError: A probe's score differs by more than the tolerance.
        """
        batch = self.probe_batch()
        reference = self.torch_scores(*batch)
        session = _session(graph)
        batched = _run(session, *batch)
        rows = self.probe_rows()
        from crossrank.batching import pad_batch

        alone = np.array([_run(session, *pad_batch([row], self.prepared.encoder.pad_id))[0] for row in rows])
        diff = np.maximum(np.abs(batched - reference), np.abs(alone - reference))
        allowed = self.tolerance * np.maximum(1.0, np.abs(reference))
        worst = int(np.argmax(diff / allowed))
        report = ParityReport(
            max_abs_diff=float(diff.max()), worst_pair=worst, pairs=len(rows), tolerance=self.tolerance,
            passed=bool(np.all(diff <= allowed)),
        )
        if not report.passed:
            query, document = self.probes[worst] if worst < len(self.probes) else ("?", "?")
            raise ExportParityError(
                f"the exported ONNX graph disagrees with the PyTorch model of {self.prepared.path}: probe pair "
                f"{worst} ({query[:40]!r}, {document[:40]!r}) scores {float(batched[worst]):.6f} batched and "
                f"{float(alone[worst]):.6f} alone in ONNX against {float(reference[worst]):.6f} in torch (max |diff| "
                f"{report.max_abs_diff:.3g} > tolerance {self.tolerance:g}); the graph was not written"
            )
        return report

    def write_graph(self, target: Path) -> ParityReport:
        """Trace, verify and only then write the fp32 graph at ``target``."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
            candidate = Path(scratch) / "model.onnx"
            self.trace(candidate)
            if not candidate.is_file():
                raise ExportParityError(f"tracing {self.prepared.path} wrote no graph; nothing was written to {target}")
            _refuse_external_data(candidate)
            report = self.verify(candidate)
            os.replace(candidate, target)
        logger.info("exported %s to %s (max |onnx - torch| %.2g on %d probe pairs)", self.prepared.path, target, report.max_abs_diff, report.pairs)
        return report

    def int8_gate(
        self, folder: Path, *, tolerance: float = DEFAULT_INT8_TOLERANCE, min_agreement: float = DEFAULT_INT8_AGREEMENT
    ) -> Int8Report:
        """Score the probes with the int8 folder as crossrank runs it and compare with fp32 torch.

        Passes when the int8 scores keep at least ``min_agreement`` of the probes' pairwise order
        and move by at most ``tolerance`` times the spread (max - min) of the fp32 scores.

        Raises:
            Int8GateError: It does not pass.
        """
        from crossrank.backends.onnx_backend import OnnxBackend
        from crossrank.models.config import ModelConfig

        config = ModelConfig.load(folder)
        backend = OnnxBackend(folder, config, "cpu", {"activation_quantization": "per-token"})
        try:
            batch = self.probe_batch()
            int8 = np.asarray(backend.score(*batch), dtype=np.float64)
        finally:
            backend.close()
        fp32 = self.torch_scores(*batch)
        spread = float(fp32.max() - fp32.min())
        diff = float(np.abs(int8 - fp32).max())
        relative = diff / spread if spread > 0 else (0.0 if diff == 0 else float("inf"))
        agreement = _pairwise_agreement(fp32, int8)
        report = Int8Report(
            max_abs_diff=diff, spread=spread, relative_diff=relative, agreement=agreement, tolerance=tolerance,
            min_agreement=min_agreement, passed=relative <= tolerance and agreement >= min_agreement,
        )
        if not report.passed:
            raise Int8GateError(
                f"int8 gate: the int8 graph of {self.prepared.path} keeps {agreement:.0%} of the probe pairs' order "
                f"(needed {min_agreement:.0%}) and moves scores by {diff:.4g} = {relative:.1%} of their spread "
                f"(allowed {tolerance:.0%}); the int8 model was not published. Export with --quantize none"
            )
        return report

    # ------------------------------------------------------------------ folder
    def export(
        self,
        out: str | Path,
        *,
        quantize: str = "none",
        overwrite: bool = False,
        int8_tolerance: float = DEFAULT_INT8_TOLERANCE,
        int8_agreement: float = DEFAULT_INT8_AGREEMENT,
    ) -> ExportResult:
        """Write a model folder ``Reranker(model=out)`` loads: the verified graph, tokenizer and ``crossrank.json``.

        Raises:
            ExportParityError: The fp32 graph disagrees with torch (nothing is written).
            Int8GateError: ``quantize="int8"`` and the int8 graph fails the gate (nothing is written).
            ConfigurationError: ``out`` exists and is not empty (without ``overwrite``), or a bad option.
        """
        if quantize not in EXPORT_QUANTIZATION:
            raise ConfigurationError(f"quantize must be one of {EXPORT_QUANTIZATION}; received {quantize!r}")
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
            raise ConfigurationError(f"{out} exists and is not empty; choose a new folder or pass --force")
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
        try:
            fp32_report = self.write_graph(staging / "model.onnx")
            int8_report = None
            quantization = "none"
            if quantize == "int8":
                quantize_int8(staging / "model.onnx", staging / "model.int8.onnx")
                os.replace(staging / "model.int8.onnx", staging / "model.onnx")
                quantization = "dynamic-int8"
            files = self._write_folder(staging, quantization, fp32_report)
            if quantize == "int8":
                int8_report = self.int8_gate(staging, tolerance=int8_tolerance, min_agreement=int8_agreement)
                self._record(staging, {"int8_gate": int8_report.to_dict()})
            if out.exists():
                shutil.rmtree(out)
            os.replace(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return ExportResult(
            folder=out, family=self.family.name, instruction=self.prepared.instruction, max_length=self.max_length,
            quantization=quantization, fp32=fp32_report, int8=int8_report, files=files,
        )

    def _write_folder(self, folder: Path, quantization: str, parity: ParityReport) -> dict[str, str]:
        from crossrank.models.config import ModelConfig
        from crossrank.models.files import sha256_file

        source, config = self.prepared.path, self.prepared.config
        shutil.copy(source / config.tokenizer_file, folder / "tokenizer.json")
        for name in _SIDE_FILES:
            if (source / name).is_file():
                shutil.copy(source / name, folder / name)
        files = {name: sha256_file(folder / name) for name in ("model.onnx", "tokenizer.json")}
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode("utf-8")).hexdigest()
        ModelConfig(
            name=config.name,
            onnx_file="model.onnx",
            revision=f"export-{digest[:16]}",
            max_length=self.prepared.limit,
            quantization=quantization,
            license=config.license,
            origin=f"crossrank export from {config.name}@{config.revision}",
            files=files,
            family=self.family.name,
            instruction=self.explicit_instruction,
            extra={"export": {"opset": self.opset, "fp32_parity": parity.to_dict(), "probe_max_length": self.max_length}},
        ).save(folder)
        return files

    @staticmethod
    def _record(folder: Path, extra: dict[str, Any]) -> None:
        from crossrank.models.config import ModelConfig

        config = ModelConfig.load(folder)
        config.extra.setdefault("export", {}).update(extra)
        config.save(folder)


def export_model(model: str | Path, out: str | Path, *, quantize: str = "none", overwrite: bool = False, **options: Any) -> ExportResult:
    """Export ``model`` to the folder ``out`` (see :meth:`GraphExporter.export`); ``options`` go to :class:`GraphExporter`."""
    exporter_options = {k: v for k, v in options.items() if k not in ("int8_tolerance", "int8_agreement")}
    gate = {k: v for k, v in options.items() if k in ("int8_tolerance", "int8_agreement")}
    return GraphExporter(model, **exporter_options).export(out, quantize=quantize, overwrite=overwrite, **gate)


def quantize_int8(source: Path, target: Path, *, per_channel: bool = True, exclude: Sequence[str] = ()) -> Path:
    """ONNX Runtime dynamic int8 quantization (int8 weights; crossrank runs activations per token)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=per_channel, nodes_to_exclude=list(exclude))
    return target


def _session(graph: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def _run(session: Any, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
    names = {i.name for i in session.get_inputs()}
    feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "token_type_ids" in names:
        feeds["token_type_ids"] = token_type_ids
    unfed = names - set(feeds)
    if unfed:
        raise ExportParityError(f"the exported graph takes inputs crossrank does not feed: {sorted(unfed)}")
    from crossrank.backends.base import logits_to_scores

    return logits_to_scores(session.run(None, feeds)[0]).astype(np.float64)


def _pairwise_agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """Share of pairs (i, j) with distinct reference scores that ``other`` orders the same way."""
    i, j = np.triu_indices(len(reference), k=1)
    sign = np.sign(reference[i] - reference[j])
    counted = sign != 0
    if not counted.any():
        return 1.0
    return float(np.mean(np.sign(other[i] - other[j])[counted] == sign[counted]))


def _refuse_external_data(graph: Path) -> None:
    """Graphs over 2 GB keep weights in side files; this export writes single-file graphs only."""
    siblings = [p for p in graph.parent.iterdir() if p.name != graph.name]
    if siblings:
        raise ExportParityError(
            f"the traced graph keeps its weights in {len(siblings)} external files ({siblings[0].name}...): models over "
            "2 GB are not supported by 'crossrank export' yet; nothing was written"
        )
