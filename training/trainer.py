"""The training loop: data -> negatives -> loss -> early stopping on dev nDCG@10 -> finished model.

:func:`train` runs a whole :class:`~crossrank.training.config.TrainConfig`: it splits the
queries (grouped, seeded, written to ``splits.json``), mines negatives, trains with the chosen
loss (optionally after a warm-up loss), evaluates dev nDCG@10, keeps the best weights, and then
calibrates, exports ONNX, quantizes to int8 and runs the regression gate
(:mod:`crossrank.training.export`). Interrupted runs resume from their last checkpoint with the
same data order: each epoch's groups are written before the epoch starts and the order within
an epoch depends only on the seed and the epoch number.

Example:
    >>> from crossrank.training import TrainConfig, train
    >>> result = train(TrainConfig.from_dict({...}))  # doctest: +SKIP
    >>> result.model_dir  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from crossrank.training.checkpoint import load_latest_checkpoint, restore_optimizer, save_checkpoint
from crossrank.training.config import EXPORT_FIELDS, TEACHER_LOSSES, TrainConfig
from crossrank.training.data import RankingData, load_data
from crossrank.training.losses import compute_loss
from crossrank.training.metrics import mean_ndcg
from crossrank.training.negatives import Group, NegativeMiner

from crossrank.errors import ConfigurationError, InvalidInputError, missing_dependency
from crossrank.models.files import atomic_write_text

__all__ = ["StepInfo", "TrainResult", "split_queries", "train"]

logger = logging.getLogger("crossrank.training")


@dataclass
class StepInfo:
    """Passed to callbacks after every optimizer step."""

    global_step: int
    epoch: int
    step_in_epoch: int
    loss: float
    loss_name: str


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        run_dir: The run folder.
        model_dir: The finished model folder (loads with ``Reranker(model=model_dir)``).
        metrics: Dev nDCG@10 before and after training, fp32 vs int8, calibration, timings.
        history: One entry per evaluation and per logged step.
    """

    run_dir: Path
    model_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def split_queries(qids: Sequence[str], dev_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split queries (not pairs) into train and dev: no query is ever in both.

    Example:
        >>> train_ids, dev_ids = split_queries([f"q{i}" for i in range(10)], 0.2, seed=1)
        >>> len(dev_ids), set(train_ids) & set(dev_ids)
        (2, set())
    """
    ordered = sorted(set(qids))
    if len(ordered) < 2:
        raise InvalidInputError(f"need at least 2 judged queries to split train/dev; received {len(ordered)}")
    random.Random(seed).shuffle(ordered)
    n_dev = min(len(ordered) - 1, max(1, round(len(ordered) * dev_fraction)))
    return sorted(ordered[n_dev:]), sorted(ordered[:n_dev])


class _Model:
    """The reranker being trained, with scoring helpers that share crossrank's pair encoding.

    The model's family (``family:`` in the config, else as the engine chooses it) builds the
    same score module the torch backend scores with and the export traces: a classifier's logit,
    or a language-model reranker's score-token logits after its prompt. Decoder families train
    low-rank adapters (``lora``); ``freeze_layers`` and the default LoRA targets follow the
    architecture.
    """

    def __init__(self, path: str | Path, config: TrainConfig, *, for_training: bool = True, family: str | None = None) -> None:
        try:
            import torch
        except ImportError:
            raise missing_dependency("torch and transformers", "train", "Training") from None
        from crossrank.encoding import PairEncoder
        from crossrank.families import ModelFiles, resolve_family
        from crossrank.families.decoder import load_tokenizer
        from crossrank.plugins import family_registry

        self.torch = torch
        self.path = Path(path)
        if not (self.path / "tokenizer.json").is_file():
            raise ConfigurationError(f"base model {path} must be a local folder with tokenizer.json, config.json and safetensors weights")
        self.device = torch.device(config.device)
        if config.num_threads is not None:
            torch.set_num_threads(config.num_threads)
        torch.manual_seed(config.seed)
        files = ModelFiles.read(self.path)
        self.family = resolve_family(
            family_registry(), files, requested=family or config.family, recorded=_recorded_family(self.path),
            names=(config.base_model, str(self.path)),
        )
        self.instruction = self.family.instruction_for(config.instruction)
        if for_training and self.family.kind != "classifier" and config.lora is None:
            raise ConfigurationError(
                f"family {self.family.name!r} scores with a language model's token logits and trains low-rank adapters: "
                "add 'lora: {}' (or lora settings) to the training config"
            )
        tokenizer = load_tokenizer(self.path / "tokenizer.json")
        self.module = self.family.torch_module(
            files, training=for_training, tokenizer=tokenizer, attn_implementation="eager"
        ).to(self.device)
        self.model = self.module.hf_model
        self.lora = for_training and config.lora is not None
        if for_training and config.freeze_layers:
            self.freeze_lower_layers(config.freeze_layers)
        if self.lora:
            self.add_lora(config)
        self.encoder = PairEncoder(
            tokenizer, max_length=config.max_length, layout=self.family.layout(tokenizer, files, instruction=self.instruction)
        )
        self.autocast = config.device.startswith("cuda")

    def freeze_lower_layers(self, count: int) -> None:
        layers, embeddings = layer_stack(self.model)
        if layers is None or embeddings is None:
            raise ConfigurationError(
                f"freeze_layers needs a model with an embedding layer and a stack of layers; {self.path} has "
                f"{type(self.model.base_model).__name__}"
            )
        if count >= len(layers):
            raise ConfigurationError(f"freeze_layers must be below the model's {len(layers)} encoder layers; received {count}")
        for module in [embeddings, *layers[:count]]:
            for parameter in module.parameters():
                parameter.requires_grad_(False)

    def add_lora(self, config: TrainConfig) -> None:
        try:
            import peft
        except ImportError:
            raise missing_dependency("peft", "train", "LoRA training") from None
        lora = config.lora
        assert lora is not None
        targets = list(lora.targets) if lora.targets else default_lora_targets(self.model)
        layers, _ = layer_stack(self.model)
        upper = list(range(config.freeze_layers, len(layers))) if (layers is not None and config.freeze_layers) else None
        peft_config = peft.LoraConfig(
            r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
            layers_to_transform=upper, bias="none",
        )
        try:
            self.model = peft.get_peft_model(self.model, peft_config)
        except ValueError as exc:
            raise ConfigurationError(f"lora.targets {targets} do not match layers of {self.path}: {exc}") from None
        # The head is new to the task (or to the domain): it is trained in full. A language
        # model's output layer is not a new head: only the adapters learn there.
        if self.family.kind == "classifier":
            for name, parameter in self.model.named_parameters():
                if any(f".{head}." in f".{name}" for head in (*_HEAD_NAMES, "pooler")):
                    parameter.requires_grad_(True)

    def plain_model(self) -> Any:
        """The model as a plain Hugging Face model: LoRA adapters (if any) merged into a copy."""
        if not self.lora:
            return self.model
        import copy

        return copy.deepcopy(self.model).merge_and_unload()

    def trainable_parameters(self) -> list[Any]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def batch(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        from crossrank.batching import pad_batch

        torch = self.torch
        queries = sorted({q for q, _ in pairs})
        index = {q: i for i, q in enumerate(queries)}
        segments, _ = self.encoder.encode(queries, [d for _, d in pairs], [index[q] for q, _ in pairs])
        ids, mask, types = pad_batch([(s.input_ids, s.token_type_ids) for s in segments], self.encoder.pad_id)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.module.input_names:
            feeds["token_type_ids"] = types
        return {k: torch.from_numpy(v).to(self.device) for k, v in feeds.items()}

    def forward(self, pairs: Sequence[tuple[str, str]]) -> Any:
        torch = self.torch
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.autocast):
            return self.module(**self.batch(pairs)).float()

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        torch = self.torch
        was_training = self.model.training
        self.model.eval()
        out: list[np.ndarray] = []
        # Length-sorted batches waste less padding; results go back in input order.
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = [pairs[i] for i in order[start : start + batch_size]]
                out.append(self.forward(chunk).cpu().numpy())
        self.model.train(was_training)
        flat = np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
        result = np.empty(len(pairs), dtype=np.float32)
        result[order] = flat
        return result


# Classification heads the trainer trains in full (with LoRA too).
_HEAD_NAMES = ("classifier", "score", "head", "pre_classifier")
# Attention projections LoRA adapts by default, by the names architectures give them: BERT,
# RoBERTa, XLM-R, ELECTRA; DeBERTa-v2/v3; DistilBERT; decoders (Qwen, Llama, Gemma, Mistral);
# ModernBERT's fused projection; GPT-2 style fused projection.
_LORA_TARGETS = (("query", "value"), ("query_proj", "value_proj"), ("q_lin", "v_lin"), ("q_proj", "v_proj"), ("Wqkv",), ("c_attn",))


def default_lora_targets(model: Any) -> list[str]:
    """The attention projections LoRA adapts when ``lora.targets`` is not given, by architecture."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for targets in _LORA_TARGETS:
        if all(t in names for t in targets):
            return list(targets)
    raise ConfigurationError(
        f"no default LoRA targets for {type(model).__name__}: set lora.targets to the names of its attention "
        f"projections (known defaults: {[list(t) for t in _LORA_TARGETS]})"
    )


def layer_stack(model: Any) -> tuple[Any, Any]:
    """The model's stack of transformer layers and its embedding layer, whatever the architecture.

    BERT-style encoders (``encoder.layer``), DistilBERT (``transformer.layer``), ModernBERT and
    decoders (``layers``); embeddings are ``embeddings`` or ``embed_tokens``. ``(None, None)``
    parts when the model has no such attribute.
    """
    base = model.base_model
    layers = None
    for path in ("encoder.layer", "transformer.layer", "layers", "layer", "h"):
        node = base
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if node is not None:
            layers = node
            break
    embeddings = getattr(base, "embeddings", None) or getattr(base, "embed_tokens", None) or getattr(base, "wte", None)
    return layers, embeddings


def _recorded_family(path: Path) -> str | None:
    """The family a model folder's ``crossrank.json`` records (a published model trained further)."""
    from crossrank.models.config import MODEL_CONFIG_FILENAME, ModelConfig

    if not (path / MODEL_CONFIG_FILENAME).is_file():
        return None
    return ModelConfig.load(path).family


def _dev_candidates(data: RankingData, qids: Sequence[str], depth: int, stemmer: str) -> dict[str, list[str]]:
    from crossrank.training.retrieval import Bm25Index

    hits = Bm25Index(data.corpus, stemmer=stemmer).search([data.queries[q] for q in qids], depth) if depth else [[] for _ in qids]
    out = {}
    for qid, row in zip(qids, hits):
        docs = [d for d, _ in row]
        docs += [d for d in sorted(data.qrels.get(qid, {})) if d not in docs]
        out[qid] = docs
    return out


def evaluate_dev(
    scorer: Callable[[list[tuple[str, str]]], np.ndarray], data: RankingData, candidates: Mapping[str, list[str]]
) -> tuple[float, dict[str, np.ndarray]]:
    """Dev nDCG@10 of a pair scorer over fixed candidate lists; also returns the logits per query."""
    pairs = [(data.queries[q], data.corpus[d]) for q, docs in candidates.items() for d in docs]
    flat = scorer(pairs) if pairs else np.zeros(0)
    scores: dict[str, np.ndarray] = {}
    rankings: dict[str, list[str]] = {}
    position = 0
    for qid, docs in candidates.items():
        values = np.asarray(flat[position : position + len(docs)], dtype=np.float64)
        position += len(docs)
        scores[qid] = values
        rankings[qid] = [docs[i] for i in np.argsort(-values, kind="stable")]
    return mean_ndcg(rankings, data.qrels), scores


def _lr(step: int, total: int, config: TrainConfig) -> float:
    warmup = int(total * config.warmup_ratio)
    if warmup and step < warmup:
        return config.learning_rate * (step + 1) / warmup
    remaining = max(1, total - warmup)
    return config.learning_rate * max(0.0, 1 - (step - warmup) / remaining)


def _write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True) + "\n")


def _resolve_model_dir(name: str) -> Path:
    path = Path(name)
    if path.is_dir():
        return path
    from crossrank.models.resolve import resolve_model

    return Path(resolve_model(name).path)


def train(
    config: TrainConfig,
    *,
    callbacks: Sequence[Callable[[StepInfo], None]] = (),
    resume: bool = True,
) -> TrainResult:
    """Run a full training configuration and return the finished model.

    Args:
        config: The run's configuration.
        callbacks: Called after every optimizer step with a :class:`StepInfo`.
        resume: Continue from the run folder's last checkpoint when there is one.

    Raises:
        crossrank.training.export.RegressionGateError: the int8 model lost more than
            ``gate_tolerance`` dev nDCG@10 against fp32.
    """
    started = time.perf_counter()
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "run-config.json"
    if config_file.is_file() and resume:
        previous = json.loads(config_file.read_text())
        current = config.to_dict()
        changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        if any(k not in EXPORT_FIELDS for k in changed):
            raise ConfigurationError(
                f"{run_dir} holds a run with a different configuration (changed: {[k for k in changed if k not in EXPORT_FIELDS]}); "
                "use a new output_dir or resume=False"
            )
        if changed:
            # Training is untouched by these settings, so the checkpoints stay valid: the run
            # resumes (or, when finished, goes straight to the export) with the new settings.
            logger.info("export settings changed since the run started (%s); the export is redone with them", ", ".join(changed))
    elif not resume and (run_dir / "checkpoints").exists():
        shutil.rmtree(run_dir / "checkpoints")
    if not resume:
        (run_dir / INVOCATIONS_FILE).unlink(missing_ok=True)
    started_at = datetime.now(timezone.utc)
    _write_json(config_file, config.to_dict())

    data = load_data(config.data)
    _write_json(run_dir / "data-report.json", {"train": data.report.to_dict()})
    if config.dev_data is not None:
        dev_data = load_data(config.dev_data)
        train_qids, dev_qids = sorted(data.queries), dev_data.judged_queries()
        split = {"mode": "separate dev data", "train": train_qids, "dev": dev_qids}
    else:
        dev_data = data
        labeled = data.judged_queries()
        no_answer = data.no_answer_queries()
        unjudged = sorted(set(data.queries) - set(labeled) - set(no_answer))
        train_labeled, dev_qids = split_queries(labeled, config.dev_fraction, config.split_seed)
        # No-answer queries are held out in the same proportion, so that an abstention rule can
        # be fitted on queries the model never saw; dev nDCG@10 needs a relevant document and
        # keeps to ``dev``.
        train_no_answer, dev_no_answer = split_queries(no_answer, config.dev_fraction, config.split_seed) if len(no_answer) >= 2 else (no_answer, [])
        teacher_only = unjudged if config.loss in TEACHER_LOSSES else []
        train_qids = sorted(train_labeled + train_no_answer + teacher_only)
        split = {"mode": "query-grouped", "dev_fraction": config.dev_fraction, "seed": config.split_seed, "train": train_qids, "dev": dev_qids}
        if dev_no_answer:
            split["dev_no_answer"] = dev_no_answer
    split["data_fingerprint"] = data.fingerprint()
    splits_file = run_dir / "splits.json"
    if splits_file.is_file() and json.loads(splits_file.read_text()) != split:
        raise ConfigurationError(f"{splits_file} differs from the split this data produces; the data changed since the run started")
    _write_json(splits_file, split)

    candidates_file = run_dir / "dev-candidates.json"
    if candidates_file.is_file():
        dev_candidates = json.loads(candidates_file.read_text())
    else:
        dev_candidates = _dev_candidates(dev_data, dev_qids, config.dev_candidates, config.bm25_stemmer)
        _write_json(candidates_file, dev_candidates)

    base_dir = _resolve_model_dir(config.base_model)
    model = _Model(base_dir, config)
    torch = model.torch
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    teacher = _Teacher(config, run_dir) if (config.teacher and _uses_teacher(config)) else None
    miner = NegativeMiner(data, config.negatives, bm25_stemmer=config.bm25_stemmer)

    history: list[dict[str, Any]] = []
    state: dict[str, Any] = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best": None, "best_step": None, "bad_evals": 0, "stopped": False}
    checkpoint = load_latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        folder, state = checkpoint
        restore_optimizer(folder, model.model, optimizer)
        history = json.loads((run_dir / "history.json").read_text()) if (run_dir / "history.json").is_file() else []
        history = [h for h in history if h["step"] <= state["global_step"]]
        _truncate_order_log(run_dir, state["global_step"])
        logger.info("resuming %s from step %d (epoch %d, batch %d)", run_dir, state["global_step"], state["epoch"], state["step_in_epoch"])
    else:
        (run_dir / "data-order.jsonl").unlink(missing_ok=True)
        before, _ = evaluate_dev(model.score, dev_data, dev_candidates)
        history.append({"step": 0, "dev_ndcg@10": before})
        state["best"], state["best_step"], state["before"] = before, 0, before
        _save_best(model, run_dir, base_dir)
        logger.info("dev nDCG@10 before training: %.4f", before)

    first_step = state["global_step"]
    epoch_groups_dir = run_dir / "epochs"
    pools_file = run_dir / "negative-pools.json"
    if pools_file.is_file():
        miner.set_pools(json.loads(pools_file.read_text()))
    steps_per_epoch = math.ceil(max(1, _estimate_groups(data, train_qids)) / config.batch_size)
    total_steps = config.max_steps or steps_per_epoch * config.epochs

    model.model.train()
    while state["epoch"] < config.epochs and not state["stopped"]:
        epoch = state["epoch"]
        groups = _epoch_groups(epoch_groups_dir / f"epoch-{epoch}.json", miner, train_qids, config, epoch, model, data, pools_file)
        if teacher is not None:
            teacher.annotate(groups, data)
        order = np.random.default_rng(config.seed * 1000 + epoch).permutation(len(groups)).tolist()
        batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        for batch_index in range(state["step_in_epoch"], len(batches)):
            batch = [groups[i] for i in batches[batch_index]]
            loss_name = _loss_for_step(config, state["global_step"])
            for group_param in optimizer.param_groups:
                group_param["lr"] = _lr(state["global_step"], total_steps, config)
            loss = _step(model, batch, data, loss_name)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), 1.0)
            optimizer.step()
            state["global_step"] += 1
            state["step_in_epoch"] = batch_index + 1
            value = float(loss.detach())
            history.append({"step": state["global_step"], "loss": value, "loss_name": loss_name, "epoch": epoch})
            with open(run_dir / "data-order.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps({"step": state["global_step"], "epoch": epoch, "groups": batches[batch_index]}) + "\n")
            finished_epoch = batch_index + 1 == len(batches)
            reached_max = config.max_steps is not None and state["global_step"] >= config.max_steps
            if config.eval_every_steps and state["global_step"] % config.eval_every_steps == 0 and not finished_epoch:
                _evaluate(model, dev_data, dev_candidates, state, history, run_dir, base_dir, config)
            if config.checkpoint_every_steps and state["global_step"] % config.checkpoint_every_steps == 0 and not finished_epoch:
                _write_json(run_dir / "history.json", history)
                save_checkpoint(run_dir, model.model, optimizer, state)
            for callback in callbacks:
                callback(StepInfo(state["global_step"], epoch, batch_index + 1, value, loss_name))
            if reached_max or state["stopped"]:
                state["stopped"] = True
                break
        evaluated_now = history and history[-1].get("step") == state["global_step"] and "dev_ndcg@10" in history[-1]
        if not evaluated_now:
            _evaluate(model, dev_data, dev_candidates, state, history, run_dir, base_dir, config)
        state["epoch"] += 1
        state["step_in_epoch"] = 0
        _write_json(run_dir / "history.json", history)
        save_checkpoint(run_dir, model.model, optimizer, state)
    _write_json(run_dir / "history.json", history)
    train_seconds = time.perf_counter() - started
    invocation = {
        "started": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "steps_before": first_step,
        "steps_after": state["global_step"],
        "train_seconds": round(train_seconds, 1),
        "outcome": "export failed",
    }

    from crossrank.training.export import RegressionGateError, finish_run

    try:
        result = finish_run(config, run_dir, base_dir, data, dev_data, dev_candidates, history, state, train_seconds)
    except RegressionGateError:
        invocation["outcome"] = "refused by the regression gate"
        raise
    else:
        invocation["outcome"] = "published"
    finally:
        invocations = _record_invocation(run_dir, invocation)
    result.metrics["invocations"] = invocations
    return result


INVOCATIONS_FILE = "invocations.json"


def _record_invocation(run_dir: Path, invocation: dict[str, Any]) -> list[dict[str, Any]]:
    """Append this call to the run folder's ledger: a resumed run's figures alone would hide the earlier calls' work."""
    ledger = run_dir / INVOCATIONS_FILE
    invocations = json.loads(ledger.read_text()) if ledger.is_file() else []
    invocations.append(invocation)
    _write_json(ledger, invocations)
    return invocations


def _uses_teacher(config: TrainConfig) -> bool:
    return config.loss in TEACHER_LOSSES or (config.curriculum is not None and config.curriculum.warmup_loss in TEACHER_LOSSES)


def _loss_for_step(config: TrainConfig, step: int) -> str:
    if config.curriculum is not None and step < config.curriculum.warmup_steps:
        return config.curriculum.warmup_loss
    return config.loss


def _estimate_groups(data: RankingData, qids: Sequence[str]) -> int:
    return sum(max(1, len(data.positives(q))) for q in qids)


def _step(model: _Model, batch: Sequence[Group], data: RankingData, loss_name: str) -> Any:
    torch = model.torch
    width = max(len(g["docs"]) for g in batch)
    pairs = [(data.queries[g["qid"]], data.corpus[d]) for g in batch for d in g["docs"]]
    flat = model.forward(pairs)
    scores = torch.zeros((len(batch), width), device=flat.device)
    labels = torch.zeros((len(batch), width), device=flat.device)
    mask = torch.zeros((len(batch), width), device=flat.device)
    teacher = torch.zeros((len(batch), width), device=flat.device) if all("teacher" in g for g in batch) else None
    rows, cols = [], []
    for row, group in enumerate(batch):
        n = len(group["docs"])
        rows += [row] * n
        cols += list(range(n))
        labels[row, :n] = torch.tensor(group["labels"], dtype=torch.float32)
        mask[row, :n] = 1
        if teacher is not None:
            teacher[row, :n] = torch.tensor(group["teacher"], dtype=torch.float32)
    scores = scores.index_put((torch.tensor(rows), torch.tensor(cols)), flat)
    return compute_loss(loss_name, scores, labels, mask, teacher)


def _epoch_groups(
    path: Path, miner: NegativeMiner, qids: Sequence[str], config: TrainConfig, epoch: int, model: _Model, data: RankingData, pools_file: Path
) -> list[Group]:
    if path.is_file():
        return json.loads(path.read_text())
    scorer = None
    if miner.needs_scorer():
        def scorer(query: str, documents: Sequence[str]) -> Sequence[float]:
            return model.score([(query, d) for d in documents]).tolist()
    groups = miner.groups(qids, seed=config.seed * 7919 + epoch, scorer=scorer)
    if not groups:
        raise InvalidInputError("no training groups: the training queries have no usable positives or candidates")
    if miner.needs_pool() and not pools_file.is_file():
        _write_json(pools_file, miner.pools)
    _write_json(path, groups)
    return groups


def _truncate_order_log(run_dir: Path, step: int) -> None:
    log = run_dir / "data-order.jsonl"
    if not log.is_file():
        return
    kept = [line for line in log.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    atomic_write_text(log, "".join(line + "\n" for line in kept))


def _save_best(model: _Model, run_dir: Path, base_dir: Path) -> None:
    best = run_dir / "best"
    tmp = run_dir / ".best.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.plain_model().save_pretrained(str(tmp), safe_serialization=True)
    # The tokenizer, and the settings that say how pairs are encoded (a CrossEncoder's prompt and length).
    for name in (
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
        "config_sentence_transformers.json", "sentence_bert_config.json", "modules.json",
    ):
        if (base_dir / name).is_file():
            shutil.copy(base_dir / name, tmp / name)
    if best.exists():
        old = run_dir / ".best.old"
        if old.exists():
            shutil.rmtree(old)
        best.rename(old)
        tmp.rename(best)
        shutil.rmtree(old)
    else:
        tmp.rename(best)


def _evaluate(
    model: _Model, dev_data: RankingData, candidates: Mapping[str, list[str]], state: dict[str, Any],
    history: list[dict[str, Any]], run_dir: Path, base_dir: Path, config: TrainConfig,
) -> None:
    value, _ = evaluate_dev(model.score, dev_data, candidates)
    history.append({"step": state["global_step"], "dev_ndcg@10": value})
    logger.info("step %d: dev nDCG@10 %.4f (best %.4f)", state["global_step"], value, state["best"])
    if value > state["best"]:
        state["best"], state["best_step"], state["bad_evals"] = value, state["global_step"], 0
        _save_best(model, run_dir, base_dir)
    else:
        state["bad_evals"] += 1
        if config.patience is not None and state["bad_evals"] >= config.patience:
            logger.info("early stopping: %d evaluations without improvement", state["bad_evals"])
            state["stopped"] = True


class _Teacher:
    """A teacher's raw logits for training pairs, cached in the run folder so resume never rescores."""

    def __init__(self, config: TrainConfig, run_dir: Path) -> None:
        self.config = config
        self.file = run_dir / "teacher-scores.json"
        self.cache: dict[str, float] = json.loads(self.file.read_text()) if self.file.is_file() else {}
        self._reranker: Any = None

    def annotate(self, groups: list[Group], data: RankingData) -> None:
        keys = {(g["qid"], d) for g in groups for d in g["docs"]}
        missing = sorted(k for k in keys if f"{k[0]}\t{k[1]}" not in self.cache)
        if missing:
            if self._reranker is None:
                from crossrank import Reranker
                from crossrank.config import RerankerConfig

                self._reranker = Reranker.from_config(
                    RerankerConfig(model=self.config.teacher, max_length=self.config.max_length)
                )
            scores = self._reranker.score([(data.queries[q], data.corpus[d]) for q, d in missing], raw=True)
            self.cache.update({f"{q}\t{d}": float(s) for (q, d), s in zip(missing, scores)})
            _write_json(self.file, self.cache)
        for group in groups:
            group["teacher"] = [self.cache[f"{group['qid']}\t{d}"] for d in group["docs"]]
