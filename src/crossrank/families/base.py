"""The family interface: how pairs become model inputs and model outputs become one raw score.

A :class:`ModelFamily` is what differs between rerankers built on different kinds of models:

* :meth:`ModelFamily.layout` says how a (query, document) pair becomes one row of token ids
  (special tokens, a prompt around the texts, the padding token);
* :meth:`ModelFamily.torch_module` builds a PyTorch module that maps a padded batch of rows
  (bound by name: ``input_ids``, ``attention_mask`` and, where the model has them,
  ``token_type_ids``) to one raw score per row. The same module scores on the torch backend,
  is exported as the ONNX graph and is what the trainer fine-tunes, so the three cannot disagree.

Families are registered through the ``crossrank_families`` plugin hook, like backends.
:class:`ModelFiles` reads what a model folder says about itself once (``config.json``, the
tokenizer's configuration, sentence-transformers settings).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from crossrank.errors import ConfigurationError, ModelIntegrityError

if TYPE_CHECKING:
    from crossrank.encoding import PairLayout

__all__ = ["DEFAULT_MAX_LENGTH_CAP", "ModelFamily", "ModelFiles", "ScoreModule"]

DEFAULT_MAX_LENGTH_CAP = 512
"""The default ``max_length`` never exceeds this: long-context models score 512-token rows unless asked."""

# Model types whose position ids start after the padding index (``padding_idx + 1``), so that
# ``max_position_embeddings`` counts ``pad_token_id + 1`` positions no token can use.
_POSITION_OFFSET_TYPES = frozenset(
    {
        "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "xmod",
        "roberta-prelayernorm", "mpnet", "longformer", "ibert", "luke", "bertweet",
    }
)
# A tokenizer's model_max_length above this is the "no limit" placeholder, not a limit.
_UNSET_LENGTH = 1_000_000


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelIntegrityError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelIntegrityError(f"{path} must hold a JSON object; received {type(data).__name__}")
    return data


def _positive_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        return None
    return int(value)


@dataclass(frozen=True)
class ModelFiles:
    """What a model folder says about itself, read once.

    Attributes:
        path: The model folder.
        hf_config: ``config.json`` (empty when the folder has none, e.g. an ONNX-only folder).
        tokenizer_config: ``tokenizer_config.json`` (empty when absent).
        special_tokens: ``special_tokens_map.json`` (empty when absent).
        st_config: sentence-transformers CrossEncoder settings: ``config_sentence_transformers.json``
            merged over ``config.json``'s ``sentence_transformers`` entry (empty when neither).
        st_modules: ``modules.json`` of a sentence-transformers folder (empty when absent).
        st_module_config: ``sentence_bert_config.json`` (empty when absent).
    """

    path: Path
    hf_config: Mapping[str, Any] = field(default_factory=dict)
    tokenizer_config: Mapping[str, Any] = field(default_factory=dict)
    special_tokens: Mapping[str, Any] = field(default_factory=dict)
    st_config: Mapping[str, Any] = field(default_factory=dict)
    st_modules: tuple[Mapping[str, Any], ...] = ()
    st_module_config: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: str | Path) -> ModelFiles:
        folder = Path(folder)
        hf_config = _read_json(folder / "config.json")
        st_config: dict[str, Any] = {}
        embedded = hf_config.get("sentence_transformers")
        if isinstance(embedded, Mapping):
            st_config.update(embedded)
        legacy = hf_config.get("sbert_ce_default_activation_function")
        if isinstance(legacy, str):
            st_config.setdefault("activation_fn", legacy)
        st_file = _read_json(folder / "config_sentence_transformers.json")
        st_config.update(st_file)
        modules_path = folder / "modules.json"
        modules: list[Any] = []
        if modules_path.is_file():
            try:
                modules = json.loads(modules_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                raise ModelIntegrityError(f"cannot read {modules_path}: {exc}") from None
            if not isinstance(modules, list) or not all(isinstance(m, Mapping) for m in modules):
                raise ModelIntegrityError(f"{modules_path} must hold a list of module objects")
        return cls(
            path=folder,
            hf_config=hf_config,
            tokenizer_config=_read_json(folder / "tokenizer_config.json"),
            special_tokens=_read_json(folder / "special_tokens_map.json"),
            st_config=st_config,
            st_modules=tuple(modules),
            st_module_config=_read_json(folder / "sentence_bert_config.json"),
        )

    # ------------------------------------------------------------------ what the model is
    @property
    def architectures(self) -> tuple[str, ...]:
        value = self.hf_config.get("architectures") or ()
        return tuple(str(a) for a in value) if isinstance(value, (list, tuple)) else ()

    @property
    def model_type(self) -> str | None:
        value = self.hf_config.get("model_type")
        return str(value) if isinstance(value, str) else None

    @property
    def is_causal_lm(self) -> bool:
        """The checkpoint is a language model (``*ForCausalLM``/``*LMHeadModel``), not a classifier."""
        return any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in self.architectures)

    @property
    def is_sentence_transformers(self) -> bool:
        """A sentence-transformers CrossEncoder folder (its settings say so)."""
        return self.st_config.get("model_type") == "CrossEncoder" or bool(self.st_config.get("activation_fn")) or (
            bool(self.st_modules) and "transformer_task" in self.st_module_config
        )

    # ------------------------------------------------------------------ lengths
    @property
    def position_limit(self) -> int | None:
        """The longest row the position table holds (offsets subtracted), or None if unknown.

        RoBERTa-style models (XLM-R, CamemBERT, MPNet...) start positions after the padding
        index, so ``max_position_embeddings`` 514 holds 512 tokens.
        """
        positions = _positive_int(self.hf_config.get("max_position_embeddings"))
        if positions is None:
            return None
        if self.model_type in _POSITION_OFFSET_TYPES:
            pad = self.hf_config.get("pad_token_id", 1)
            pad = pad if isinstance(pad, int) and not isinstance(pad, bool) and pad >= 0 else 1
            positions -= pad + 1
        return positions if positions >= 8 else None

    @property
    def stated_max_length(self) -> tuple[int, str] | None:
        """The length the model's own scoring code uses, and the file that states it.

        The sentence-transformers module's ``max_seq_length``, then the tokenizer's
        ``model_max_length`` (where sentence-transformers also stores a CrossEncoder's
        ``max_length``); None when neither states one.
        """
        value = _positive_int(self.st_module_config.get("max_seq_length"))
        if value is not None:
            return value, "sentence_bert_config.json max_seq_length"
        value = _positive_int(self.tokenizer_config.get("model_max_length"))
        if value is not None and value < _UNSET_LENGTH:
            return value, "tokenizer_config.json model_max_length"
        return None

    def special_token(self, name: str) -> str | None:
        """A special token's text (``bos_token``, ``pad_token``...) from the tokenizer's configuration."""
        for source in (self.tokenizer_config, self.special_tokens):
            value = source.get(name)
            if isinstance(value, Mapping):
                value = value.get("content")
            if isinstance(value, str) and value:
                return value
        return None

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages the model card (``README.md`` front matter) states, if any."""
        readme = self.path / "README.md"
        if not readme.is_file():
            return ()
        try:
            text = readme.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ()
        return _card_languages(text)


def _card_languages(text: str) -> tuple[str, ...]:
    """The ``language:`` entry of a model card's YAML front matter (a string or a list)."""
    if not text.startswith("---"):
        return ()
    end = text.find("\n---", 3)
    if end < 0:
        return ()
    lines = text[3:end].splitlines()
    for index, line in enumerate(lines):
        if not line.startswith(("language:", "languages:")):
            continue
        value = line.split(":", 1)[1].strip()
        if value:
            value = value.strip("[]")
            return tuple(v.strip().strip("'\"") for v in value.split(",") if v.strip())
        found = []
        for item in lines[index + 1 :]:
            stripped = item.strip()
            if not stripped.startswith("- "):
                break
            found.append(stripped[2:].strip().strip("'\""))
        return tuple(found)
    return ()


class ScoreModule:
    """Marker for the torch modules families build (see :meth:`ModelFamily.torch_module`).

    A score module is a ``torch.nn.Module`` whose ``forward(input_ids, attention_mask,
    token_type_ids=None)`` returns a float tensor of shape ``(rows,)``: one raw score per row.
    Rows are right-padded (``attention_mask == 0`` marks padding). ``input_names`` lists the
    inputs the model really takes, in the order the exported graph declares them;
    ``position_limit`` is the longest row it accepts; ``hf_model`` is the wrapped Hugging Face
    model (what the trainer saves).
    """

    input_names: tuple[str, ...]


class ModelFamily(ABC):
    """How one kind of reranker turns pairs into model inputs and model outputs into a raw score.

    Subclasses set the class attributes and implement :meth:`layout` and :meth:`torch_module`.
    Instances are registered through the ``crossrank_families`` hook and chosen by name
    (``Reranker(family=...)``), by a model folder's ``crossrank.json``, by the table of known
    model ids, or by :meth:`detects`.

    Attributes:
        name: The name users pass as ``family=``.
        kind: ``"classifier"`` (a classification head's logit) or ``"token-logits"``
            (a language model's next-token logits).
        description: One line for ``crossrank models info`` and error messages.
        scoring: One line saying how the raw score and the default probability are computed.
        instruction_aware: Whether ``instruction=`` changes the prompt.
        default_instruction: The instruction used when none is given (instruction-aware only).
        known_models: Hugging Face ids that are this family (matched case-insensitively).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "classifier"
    description: ClassVar[str] = ""
    scoring: ClassVar[str] = ""
    instruction_aware: ClassVar[bool] = False
    default_instruction: ClassVar[str | None] = None
    known_models: ClassVar[tuple[str, ...]] = ()

    def detects(self, files: ModelFiles) -> bool:
        """Whether a folder with no declared family is of this family (checked in registry order)."""
        return False

    def instruction_for(self, instruction: str | None) -> str | None:
        """The instruction a prompt uses: the given one, else the family's default.

        Raises:
            ConfigurationError: An instruction for a family whose prompt has no place for one.
        """
        if instruction is None:
            return self.default_instruction if self.instruction_aware else None
        if not self.instruction_aware:
            raise ConfigurationError(
                f"family {self.name!r} takes no instruction; received instruction={instruction!r}. "
                "Instruction-aware families: see 'crossrank models info' or docs/families.md"
            )
        return instruction

    @abstractmethod
    def layout(self, tokenizer: Any, files: ModelFiles, *, instruction: str | None) -> PairLayout:
        """How a pair becomes one row of this model's token ids."""

    @abstractmethod
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
        """A torch module scoring padded rows (see :class:`ScoreModule`).

        Loads the weights in ``files.path`` (``tokenizer``: the folder's ``tokenizers.Tokenizer``,
        when the family needs token ids; ``load_options`` go to ``from_pretrained``, e.g.
        ``attn_implementation="eager"`` for tracing). A load that would leave weights newly initialized
        is refused (:class:`~crossrank.errors.ModelIntegrityError` naming them), except, with
        ``training=True``, a classification head the trainer is about to train.
        """

    def raw_scores(self, outputs: np.ndarray) -> np.ndarray:
        """One raw score per row from what a scoring graph returns (``(B,)``, ``(B,1)`` or ``(B,2)``)."""
        from crossrank.backends.base import logits_to_scores

        return logits_to_scores(outputs)

    def probability_note(self, files: ModelFiles) -> str | None:
        """A sentence on how the uncalibrated probability relates to the model's own score, if useful."""
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "scoring": self.scoring,
            "instruction_aware": self.instruction_aware,
            "default_instruction": self.default_instruction,
            "known_models": list(self.known_models),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
