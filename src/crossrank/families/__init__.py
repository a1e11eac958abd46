"""Model families: how each kind of reranker turns pairs into inputs and outputs into a raw score.

Built-in families (registered through the ``crossrank_families`` plugin hook, like backends):

================================  =================================================================
``classifier``                    sequence classifiers (BERT, RoBERTa, XLM-R, DeBERTa-v2/v3,
                                  ModernBERT, ELECTRA, DistilBERT, decoder classifiers)
``sentence-transformers``         a classifier saved as a sentence-transformers ``CrossEncoder``
``qwen3-reranker``                Qwen3-Reranker: ``logit("yes") - logit("no")`` after its prompt
``bge-llm-reranker``              FlagEmbedding LLM rerankers: ``logit("Yes")`` after its prompt
``mxbai-rerank-v2``               mxbai-rerank v2: ``logit("1") - logit("0")`` after its prompt
================================  =================================================================

:func:`resolve_family` picks a model's family: ``family=`` when given, else the one its
``crossrank.json`` records, else the table of known model ids (:func:`known_models`), else
detection from its files (a sentence-transformers folder, any other classifier). A language
model that no family claims is refused with the list of families that could score it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from crossrank.errors import ConfigurationError
from crossrank.families.base import DEFAULT_MAX_LENGTH_CAP, ModelFamily, ModelFiles, ScoreModule
from crossrank.families.classifier import ClassifierFamily, SentenceTransformersFamily
from crossrank.families.decoder import (
    BgeLlmRerankerFamily,
    MxbaiRerankV2Family,
    PromptTemplate,
    Qwen3RerankerFamily,
    TokenLogitFamily,
)

__all__ = [
    "BUILTIN_FAMILIES",
    "BgeLlmRerankerFamily",
    "ClassifierFamily",
    "DEFAULT_MAX_LENGTH_CAP",
    "ModelFamily",
    "ModelFiles",
    "MxbaiRerankV2Family",
    "PromptTemplate",
    "Qwen3RerankerFamily",
    "ScoreModule",
    "SentenceTransformersFamily",
    "TokenLogitFamily",
    "builtin_families",
    "known_models",
    "model_lengths",
    "resolve_family",
]

DEFAULT_FAMILY = "classifier"
BUILTIN_FAMILIES = ("classifier", "sentence-transformers", "qwen3-reranker", "bge-llm-reranker", "mxbai-rerank-v2")


def builtin_families() -> list[ModelFamily]:
    """crossrank's own families, in the order detection tries them."""
    return [
        ClassifierFamily(),
        SentenceTransformersFamily(),
        Qwen3RerankerFamily(),
        BgeLlmRerankerFamily(),
        MxbaiRerankV2Family(),
    ]


def known_models(registry: Mapping[str, ModelFamily]) -> dict[str, str]:
    """Hugging Face model id -> family name, declared by each family's ``known_models``.

    Example:
        >>> from crossrank.plugins import family_registry
        >>> known_models(family_registry())["Qwen/Qwen3-Reranker-0.6B"]
        'qwen3-reranker'
    """
    table: dict[str, str] = {}
    for family in registry.values():
        for model in family.known_models:
            table[model] = family.name
    return table


def resolve_family(
    registry: Mapping[str, ModelFamily],
    files: ModelFiles,
    *,
    requested: str | None = None,
    recorded: str | None = None,
    names: Sequence[str | None] = (),
    recorded_in: str = "crossrank.json",
) -> ModelFamily:
    """The family that scores the model in ``files``.

    Args:
        registry: Families by name (:func:`crossrank.plugins.family_registry`).
        files: The model folder's files.
        requested: ``family=`` as given (wins over everything).
        recorded: The family the folder's ``crossrank.json`` records.
        names: Names the model is known by (the requested model, its configured name), looked up
            in the table of known model ids.
        recorded_in: Where ``recorded`` comes from, for messages.

    Raises:
        ConfigurationError: An unknown family name, or a language model no family claims.
    """
    if requested is not None:
        return _lookup(registry, requested, "family=")
    if recorded is not None:
        return _lookup(registry, recorded, f"{files.path / recorded_in} field 'family'")
    known = known_models(registry)
    table = {model.lower(): family for model, family in known.items()}
    short_names = {model.split("/")[-1]: family for model, family in table.items()}
    for name in names:
        key = (name or "").strip().lower().rstrip("/")
        if key in table:
            return registry[table[key]]
        if files.is_causal_lm and key.split("/")[-1] in short_names:
            # A language model in a local folder named after a known model (``./Qwen3-Reranker-0.6B``).
            return registry[short_names[key.split("/")[-1]]]
    for family in reversed(list(registry.values())):
        if family.name != DEFAULT_FAMILY and family.detects(files):
            return family
    if files.is_causal_lm:
        token_families = sorted(f.name for f in registry.values() if f.kind == "token-logits")
        raise ConfigurationError(
            f"{files.path} holds a causal language model ({', '.join(files.architectures)}) and crossrank does not know "
            f"how to score it as a reranker: pass family= one of {token_families} (known model ids: {sorted(known)}), "
            "or use a sequence-classification checkpoint"
        )
    if DEFAULT_FAMILY not in registry:
        raise ConfigurationError(f"no family can score {files.path}; registered families: {sorted(registry)}")
    return registry[DEFAULT_FAMILY]


def _lookup(registry: Mapping[str, ModelFamily], name: str, where: str) -> ModelFamily:
    family = registry.get(name)
    if family is None:
        raise ConfigurationError(f"{where}: unknown model family {name!r}; registered families: {sorted(registry)}")
    return family


def model_lengths(files: ModelFiles, recorded_limit: int) -> tuple[int, int, str]:
    """The longest row a model accepts, its default ``max_length`` and where that default comes from.

    The limit is the smaller of ``recorded_limit`` (``crossrank.json``'s ``max_length``, or the
    detected ``max_position_embeddings``) and the real size of the position table
    (:attr:`ModelFiles.position_limit`: RoBERTa-style offsets subtracted). The default is what the
    model's own code uses (a sentence-transformers ``max_seq_length``, else the tokenizer's
    ``model_max_length``), else the limit; never above the limit nor above
    :data:`DEFAULT_MAX_LENGTH_CAP` (512), so long-context models score 512-token rows unless
    ``max_length=`` asks for more.
    """
    limit = recorded_limit
    position_limit = files.position_limit
    if position_limit is not None and position_limit < limit:
        limit = position_limit
    stated = files.stated_max_length
    default, source = (stated if stated is not None else (limit, "the model's position limit"))
    if default > limit:
        default, source = limit, "the model's position limit"
    if default > DEFAULT_MAX_LENGTH_CAP:
        default, source = DEFAULT_MAX_LENGTH_CAP, f"the default cap of {DEFAULT_MAX_LENGTH_CAP} tokens"
    return limit, default, source
