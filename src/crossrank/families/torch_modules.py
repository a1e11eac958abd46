"""PyTorch score modules: a Hugging Face model wrapped to return one raw score per row.

The same module scores on the torch backend, is traced into the ONNX graph (inputs by name, no
key/value cache, one output: ``logits`` of shape ``(rows, 1)``) and is what the trainer
fine-tunes. Rows are right-padded; models that read their score at the last token (decoder
classifiers, token-logit rerankers) read it at each row's last real token, so a row's score
never depends on the other rows of its batch or on the padding token.

Importing this module imports torch; :mod:`crossrank.families` imports it only when needed.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from crossrank.errors import ConfigurationError, ModelIntegrityError, missing_dependency
from crossrank.families.base import ModelFiles

__all__ = ["ClassifierModule", "TokenLogitModule", "load_pretrained", "reduce_logits"]

logger = logging.getLogger("crossrank")

# What the trainer may start from scratch: a classification head (and BERT's pooler) over a
# pretrained encoder. Nothing else may ever be newly initialized.
HEAD_PREFIXES = ("classifier.", "score.", "pooler.", "bert.pooler.", "roberta.pooler.", "pre_classifier.")


def _dtype(value: Any) -> Any:
    if value is None or isinstance(value, torch.dtype):
        return value or torch.float32
    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if value not in names:
        raise ConfigurationError(f"dtype must be one of {sorted(names)}; received {value!r}")
    return names[value]


def load_pretrained(
    auto_class: str,
    files: ModelFiles,
    *,
    dtype: Any = None,
    trust_remote_code: bool = False,
    allow_new: Sequence[str] = (),
    **config_overrides: Any,
) -> Any:
    """Load ``files.path`` with ``transformers.<auto_class>``; refuse any newly initialized weight.

    Args:
        auto_class: ``"AutoModelForSequenceClassification"`` or ``"AutoModelForCausalLM"``.
        files: The model folder.
        dtype: ``torch.float32`` (default), ``float16`` or ``bfloat16`` (or their names).
        trust_remote_code: Run the folder's own modelling code (``auto_map``).
        allow_new: Name prefixes of weights that may be new (the trainer's fresh head).
        config_overrides: Passed to ``from_pretrained`` (``num_labels=1`` for training).

    Raises:
        ModelIntegrityError: The load reported missing, newly initialized or mismatched
            weights outside ``allow_new``; the message names them.
    """
    try:
        import transformers
    except ImportError:
        raise missing_dependency("transformers", "torch", "Loading a PyTorch model") from None
    cls = getattr(transformers, auto_class)
    try:
        model, info = cls.from_pretrained(
            str(files.path),
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            dtype=_dtype(dtype),
            output_loading_info=True,
            **config_overrides,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelIntegrityError(f"cannot load PyTorch model from {files.path} as {auto_class}: {exc}") from None
    new = set(info.get("missing_keys") or ())
    for entry in info.get("mismatched_keys") or ():
        new.add(entry[0] if isinstance(entry, (tuple, list)) else str(entry))
    refused = sorted(k for k in new if not k.startswith(tuple(allow_new)))
    if refused:
        shown = ", ".join(refused[:8]) + (f" and {len(refused) - 8} more" if len(refused) > 8 else "")
        raise ModelIntegrityError(
            f"loading {files.path} as {type(model).__name__} would leave weights newly initialized (random scores "
            f"that change on every load): {shown}. Refused. The checkpoint is not a {auto_class.replace('AutoModelFor', '')} "
            "model of this kind: for a language-model reranker pass family= (see docs/families.md)"
        )
    if new:
        logger.info("%s: new weights to train: %s", files.path, ", ".join(sorted(new)))
    return model.eval()


def reduce_logits(logits: Any) -> Any:
    """``(B, 1)`` as is, ``(B, 2)`` as ``l1 - l0``: one raw score per row, shape ``(B,)``."""
    if logits.ndim == 2 and logits.shape[1] == 1:
        return logits[:, 0]
    if logits.ndim == 2 and logits.shape[1] == 2:
        return logits[:, 1] - logits[:, 0]
    raise ModelIntegrityError(f"expected 1 or 2 classifier outputs per row; received shape {tuple(logits.shape)}")


def _last_token(hidden: Any, attention_mask: Any) -> Any:
    """Each row's hidden state at its last real token (rows are right-padded)."""
    last = attention_mask.sum(dim=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def _accepts(model: Any, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _position_limit(files: ModelFiles) -> int | None:
    return files.position_limit


class _ScoreModule(nn.Module):
    """Holds a Hugging Face model's children under their own names.

    The traced graph's node names are then the model's (``/bert/encoder/layer.1/...``), so
    patterns over them (``quantize_exclude``) read as they would for the model alone; the
    state dict has the model's keys. ``hf_model`` (not a registered child) is the model itself.
    ``as_graph`` makes ``forward`` return ``(rows, 1)``: the exported graph's ``logits``.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        object.__setattr__(self, "hf_model", model)
        for name, child in model.named_children():
            self.add_module(name, child)
        self.as_graph = False

    def _output(self, scores: Any) -> Any:
        return scores.unsqueeze(-1) if self.as_graph else scores


class ClassifierModule(_ScoreModule):
    """A sequence classifier's logit per row.

    Encoder classifiers run as they are, fed by name; ``token_type_ids`` only where the model
    takes them and has more than one type. Decoder classifiers (Qwen, Llama, Gemma... with a
    ``score`` head) read the head at each row's last real token instead of searching for the
    padding token, so batches need no ``pad_token_id`` and a row's score is the same alone.
    """

    def __init__(self, model: Any, files: ModelFiles) -> None:
        super().__init__(model)
        config = model.config
        labels = int(getattr(config, "num_labels", 1))
        if labels not in (1, 2):
            raise ModelIntegrityError(
                f"{files.path}: a reranker needs 1 or 2 classifier outputs; {type(model).__name__} has {labels}"
            )
        self.last_token = _is_decoder_classifier(model)
        self.uses_token_types = (
            not self.last_token and _accepts(model, "token_type_ids") and int(getattr(config, "type_vocab_size", 0) or 0) > 1
        )
        self.input_names = ("input_ids", "attention_mask", "token_type_ids") if self.uses_token_types else ("input_ids", "attention_mask")
        self.position_limit = _position_limit(files)

    def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
        if self.last_token:
            base = self.hf_model.base_model
            hidden = base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
            logits = self.hf_model.score(_last_token(hidden, attention_mask))
        else:
            feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
            if self.uses_token_types and token_type_ids is not None:
                feeds["token_type_ids"] = token_type_ids
            logits = self.hf_model(**feeds).logits
        return self._output(reduce_logits(logits.float()))


def _is_decoder_classifier(model: Any) -> bool:
    try:
        from transformers.modeling_layers import GenericForSequenceClassification
    except ImportError:  # older transformers: recognise the shape of the class instead
        GenericForSequenceClassification = ()  # noqa: N806
    if GenericForSequenceClassification and isinstance(model, GenericForSequenceClassification):
        return True
    return hasattr(model, "score") and not hasattr(model, "classifier") and bool(getattr(model.config, "is_decoder", False) or getattr(model.config, "use_cache", False))


class TokenLogitModule(_ScoreModule):
    """A language model's next-token logits at each row's last real token, combined into one score.

    ``score = sum(weights[i] * logit(token_ids[i]))``: ``logit("yes") - logit("no")`` for
    Qwen3-Reranker (whose P(yes) over the two tokens is ``sigmoid`` of it), ``logit("Yes")`` for
    FlagEmbedding's LLM rerankers. Only the rows of the output layer for those tokens are
    computed; a final logit soft-cap (Gemma 2) is applied as the model would.
    """

    def __init__(self, model: Any, files: ModelFiles, token_ids: Sequence[int], weights: Sequence[float]) -> None:
        super().__init__(model)
        if len(token_ids) != len(weights) or not token_ids:
            raise ConfigurationError(f"need one weight per score token; received {list(token_ids)} and {list(weights)}")
        head = model.get_output_embeddings()
        if not isinstance(head, nn.Linear):
            raise ModelIntegrityError(f"{files.path}: {type(model).__name__} has no linear output layer to read token logits from")
        vocabulary = head.weight.shape[0]
        bad = [t for t in token_ids if not 0 <= int(t) < vocabulary]
        if bad:
            raise ModelIntegrityError(f"{files.path}: score tokens {bad} are outside the output layer's {vocabulary} rows")
        self.register_buffer("token_ids", torch.tensor([int(t) for t in token_ids], dtype=torch.long), persistent=False)
        self.register_buffer("weights", torch.tensor([float(w) for w in weights], dtype=torch.float32), persistent=False)
        cap = getattr(model.config, "final_logit_softcapping", None)
        self.softcap = float(cap) if cap else None
        scale = getattr(model.config, "logit_scale", None) or getattr(model.config, "logits_scaling", None)
        if scale not in (None, 1, 1.0):
            raise ModelIntegrityError(f"{files.path}: scaled output logits ({scale}) are not supported for token-logit scoring")
        self.input_names = ("input_ids", "attention_mask")
        self.position_limit = _position_limit(files)

    def token_logits(self, input_ids: Any, attention_mask: Any) -> Any:
        """The score tokens' logits at each row's last real token, shape ``(rows, tokens)``."""
        base = self.hf_model.get_decoder() if hasattr(self.hf_model, "get_decoder") else self.hf_model.base_model
        hidden = base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        last = _last_token(hidden, attention_mask)
        head = self.hf_model.get_output_embeddings()
        bias = None if head.bias is None else head.bias[self.token_ids]
        logits = nn.functional.linear(last, head.weight[self.token_ids], bias).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
        return self._output((self.token_logits(input_ids, attention_mask) * self.weights).sum(dim=-1))
