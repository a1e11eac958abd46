"""Classifier families: a sequence-classification head's logit is the raw score.

:class:`ClassifierFamily` covers anything ``AutoModelForSequenceClassification`` loads: BERT,
RoBERTa, XLM-R, DeBERTa-v2/v3, ModernBERT, ELECTRA, DistilBERT, and decoder classifiers (Qwen,
Llama, Gemma... with a ``score`` head). The pair layout is the tokenizer's own pair template.
:class:`SentenceTransformersFamily` is the same model saved as a sentence-transformers
``CrossEncoder``: its stored prompt is put before the query as ``CrossEncoder.predict`` does,
its ``max_length`` is the default length, and its activation says how the model's own score
relates to crossrank's probability.
"""

from __future__ import annotations

from typing import Any

from crossrank.encoding import PairLayout
from crossrank.errors import ModelIntegrityError
from crossrank.families.base import ModelFamily, ModelFiles

__all__ = ["ClassifierFamily", "SentenceTransformersFamily"]

_SIGMOID = "torch.nn.modules.activation.Sigmoid"
_IDENTITY = "torch.nn.modules.linear.Identity"


def _pad_id(tokenizer: Any, files: ModelFiles) -> int | None:
    """The model's own padding id (``config.json``), else the tokenizer's pad token, else None."""
    value = files.hf_config.get("pad_token_id")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    token = files.special_token("pad_token")
    if token is not None:
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    return None


class ClassifierFamily(ModelFamily):
    """Sequence classifiers (the default for any folder that is not a language model)."""

    name = "classifier"
    kind = "classifier"
    description = (
        "sequence classifiers (AutoModelForSequenceClassification): BERT, RoBERTa, XLM-R, DeBERTa-v2/v3, "
        "ModernBERT, ELECTRA, DistilBERT, decoder classifiers with a score head"
    )
    scoring = (
        "raw score = the classification head's logit (two outputs: logit 1 - logit 0, so sigmoid(raw) is the "
        "softmax probability of class 1); probability = sigmoid(raw) until a calibration is fitted"
    )

    def layout(self, tokenizer: Any, files: ModelFiles, *, instruction: str | None) -> PairLayout:
        self.instruction_for(instruction)
        layout = PairLayout.from_post_processor(tokenizer)
        pad = _pad_id(tokenizer, files)
        if pad is None:
            return layout
        from dataclasses import replace

        return replace(layout, pad_id=pad)

    def torch_module(
        self,
        files: ModelFiles,
        *,
        dtype: Any = None,
        trust_remote_code: bool = False,
        training: bool = False,
        tokenizer: Any = None,
        **load_options: Any,
    ) -> Any:
        from crossrank.families.torch_modules import HEAD_PREFIXES, ClassifierModule, load_pretrained

        overrides: dict[str, Any] = {"num_labels": 1, **load_options} if training else dict(load_options)
        model = load_pretrained(
            "AutoModelForSequenceClassification", files, dtype=dtype, trust_remote_code=trust_remote_code,
            allow_new=HEAD_PREFIXES if training else (), **overrides,
        )
        return ClassifierModule(model, files)


class SentenceTransformersFamily(ClassifierFamily):
    """A sentence-transformers ``CrossEncoder`` folder: a classifier plus its stored settings."""

    name = "sentence-transformers"
    description = (
        "sentence-transformers CrossEncoder folders: a sequence classifier with its stored prompt, max_length "
        "and activation honoured"
    )
    scoring = (
        "raw score = the classifier's logit, as CrossEncoder.predict computes it before its activation; "
        "probability = sigmoid(raw), which equals CrossEncoder.predict with the default Sigmoid activation"
    )
    instruction_aware = True

    def detects(self, files: ModelFiles) -> bool:
        return files.is_sentence_transformers and not files.is_causal_lm

    def prompt(self, files: ModelFiles, instruction: str | None) -> str:
        """The text put before the query: ``instruction`` (a prompt, as ``predict(prompt=...)``) or the stored default."""
        if instruction is not None:
            return instruction
        name = files.st_config.get("default_prompt_name")
        prompts = files.st_config.get("prompts") or {}
        if name is None:
            return ""
        if not isinstance(prompts, dict) or not isinstance(prompts.get(name), str):
            raise ModelIntegrityError(
                f"{files.path / 'config_sentence_transformers.json'}: default_prompt_name {name!r} names no stored prompt; "
                f"prompts: {sorted(prompts) if isinstance(prompts, dict) else prompts!r}"
            )
        return prompts[name]

    def layout(self, tokenizer: Any, files: ModelFiles, *, instruction: str | None) -> PairLayout:
        from dataclasses import replace

        layout = super().layout(tokenizer, files, instruction=None)
        return replace(layout, query_lead=self.prompt(files, instruction))

    def activation(self, files: ModelFiles) -> str:
        """The dotted path of the activation ``CrossEncoder.predict`` applies to the logit."""
        value = files.st_config.get("activation_fn")
        if isinstance(value, str) and value:
            return value
        labels = files.hf_config.get("num_labels") or len(files.hf_config.get("id2label") or {}) or 1
        return _SIGMOID if labels == 1 else _IDENTITY

    def probability_note(self, files: ModelFiles) -> str | None:
        activation = self.activation(files)
        if activation == _SIGMOID:
            return None
        if activation == _IDENTITY:
            return (
                "its CrossEncoder.predict returns the raw logit (Identity activation), which crossrank reports as "
                "raw_score; probabilities are sigmoid(raw) until a calibration is fitted"
            )
        return (
            f"its CrossEncoder.predict applies {activation} to the logit; crossrank's raw_score is the logit and "
            "probabilities are sigmoid(raw) until a calibration is fitted"
        )

    def torch_module(
        self,
        files: ModelFiles,
        *,
        dtype: Any = None,
        trust_remote_code: bool = False,
        training: bool = False,
        tokenizer: Any = None,
        **load_options: Any,
    ) -> Any:
        for module in files.st_modules:
            kind = str(module.get("type", ""))
            if not kind.endswith(("Transformer", "CrossEncoder")):
                raise ModelIntegrityError(
                    f"{files.path / 'modules.json'}: module {kind!r} after the transformer changes the score and is not "
                    "supported; expected a CrossEncoder made of one Transformer module"
                )
        return super().torch_module(
            files, dtype=dtype, trust_remote_code=trust_remote_code, training=training, **load_options
        )
