"""Rerankers built on language models, scored from next-token logits after a prompt.

Each family writes the pair into its model card's prompt and reads the logits of a few tokens
at the last position. The prompt is tokenized in the same pieces as the family's own code
(each fixed piece alone, the query and the document each with the text around them), so the
rows are the same token ids as the reference implementation's; rows are right-padded and read
at each row's last real token, so a pair's score never depends on its batch.

* ``qwen3-reranker`` (Qwen3-Reranker 0.6B/4B/8B, model card usage code): system prompt,
  ``<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {document}``, assistant suffix;
  raw score ``logit("yes") - logit("no")``, so ``sigmoid(raw)`` is the card's P(yes) from the
  softmax over the two logits.
* ``bge-llm-reranker`` (FlagEmbedding ``FlagLLMReranker``, e.g. bge-reranker-v2-gemma):
  ``<bos>A: {query}\\nB: {document}\\n{prompt}``; raw score ``logit("Yes")`` (FlagEmbedding's
  score; ``normalize=True`` is ``sigmoid`` of it).
* ``mxbai-rerank-v2`` (mixedbread mxbai-rerank v2, its ``MxbaiRerankV2`` code): chat prefix,
  ``query: {query}``, ``\\n``, ``document: {document}``, ``\\n``, the task prompt, chat suffix;
  raw score ``logit("1") - logit("0")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crossrank.encoding import PairLayout
from crossrank.errors import ConfigurationError, ModelIntegrityError
from crossrank.families.base import ModelFamily, ModelFiles

__all__ = [
    "BgeLlmRerankerFamily",
    "MxbaiRerankV2Family",
    "PromptTemplate",
    "Qwen3RerankerFamily",
    "TokenLogitFamily",
]


@dataclass(frozen=True)
class PromptTemplate:
    """Where a pair goes in a language model's prompt.

    Attributes:
        prefix: Text before the query, tokenized alone (special tokens such as
            ``<|im_start|>`` are recognised).
        bos: Start with the tokenizer's ``bos_token`` (when it has one distinct from padding).
        query: The query's text; ``{query}`` marks where it goes, ``{instruction}`` the
            instruction. Tokenized as one string with the query; what follows ``{query}`` is kept
            when a long query is cut.
        instructed_query: The query's text when an instruction is given (default: ``query``).
        separator: Text between query and document, tokenized alone.
        document: The document's text, ending with ``{document}``; tokenized with the document.
        suffix: Texts after the document, each tokenized alone.
    """

    prefix: str = ""
    bos: bool = False
    query: str = "{query}"
    instructed_query: str | None = None
    separator: str = ""
    document: str = "{document}"
    suffix: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("query", "instructed_query"):
            value = getattr(self, name)
            if value is not None and value.count("{query}") != 1:
                raise ConfigurationError(f"PromptTemplate.{name} must contain '{{query}}' once; received {value!r}")
        if self.document.count("{document}") != 1 or not self.document.endswith("{document}"):
            raise ConfigurationError(f"PromptTemplate.document must end with '{{document}}'; received {self.document!r}")
        object.__setattr__(self, "suffix", tuple(self.suffix))


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False).ids) if text else []


class TokenLogitFamily(ModelFamily):
    """A language-model reranker: a prompt around the pair, a weighted sum of token logits as the score.

    Subclass it with class attributes, or build one directly (a plugin's family)::

        TokenLogitFamily(
            name="my-llm-reranker",
            template=PromptTemplate(query="Q: {query}", separator="\\n", document="D: {document}", suffix=("\\nRelevant:",)),
            score_tokens=((" yes", 1.0), (" no", -1.0)),
        )

    Attributes:
        template: The prompt (see :class:`PromptTemplate`).
        score_tokens: ``(token, weight)`` pairs: the raw score is ``sum(weight * logit(token))``.
        token_lookup: ``"vocabulary"`` (the token's own vocabulary entry, as
            ``convert_tokens_to_ids``) or ``"encode"`` (the first id of the text encoded).
    """

    kind = "token-logits"
    template: PromptTemplate = PromptTemplate()
    score_tokens: tuple[tuple[str, float], ...] = ()
    token_lookup: str = "encode"

    def __init__(
        self,
        *,
        name: str | None = None,
        template: PromptTemplate | None = None,
        score_tokens: Sequence[tuple[str, float]] | None = None,
        token_lookup: str | None = None,
        description: str | None = None,
        scoring: str | None = None,
        default_instruction: str | None = None,
        instruction_aware: bool | None = None,
        known_models: Sequence[str] | None = None,
    ) -> None:
        for attribute, value in (
            ("name", name), ("template", template), ("token_lookup", token_lookup), ("description", description),
            ("scoring", scoring), ("default_instruction", default_instruction), ("instruction_aware", instruction_aware),
        ):
            if value is not None:
                setattr(self, attribute, value)
        if score_tokens is not None:
            self.score_tokens = tuple((str(t), float(w)) for t, w in score_tokens)
        if known_models is not None:
            self.known_models = tuple(known_models)
        if not self.name or not self.score_tokens:
            raise ConfigurationError(f"a token-logit family needs a name and score tokens; received {self.name!r}, {self.score_tokens!r}")
        if self.token_lookup not in ("vocabulary", "encode"):
            raise ConfigurationError(f"token_lookup must be 'vocabulary' or 'encode'; received {self.token_lookup!r}")

    # ------------------------------------------------------------------ inputs
    def layout(self, tokenizer: Any, files: ModelFiles, *, instruction: str | None) -> PairLayout:
        instruction = self.instruction_for(instruction)
        t = self.template
        query = t.instructed_query if (instruction is not None and t.instructed_query) else t.query
        lead, tail = query.split("{query}")
        if instruction is not None:
            lead, tail = lead.replace("{instruction}", instruction), tail.replace("{instruction}", instruction)
        elif "{instruction}" in lead + tail:
            raise ConfigurationError(f"family {self.name!r}: its prompt needs an instruction and none was given")
        prefix: list[int] = []
        if t.bos:
            bos = self.bos_id(tokenizer, files)
            if bos is not None:
                prefix.append(bos)
        prefix += _ids(tokenizer, t.prefix)
        suffix = [i for piece in t.suffix for i in _ids(tokenizer, piece)]
        return PairLayout(
            prefix=tuple(prefix),
            middle=tuple(_ids(tokenizer, t.separator)),
            suffix=tuple(suffix),
            query_lead=lead,
            query_tail=tail,
            document_lead=t.document[: -len("{document}")],
            pad_id=self.pad_id(tokenizer, files),
        )

    def bos_id(self, tokenizer: Any, files: ModelFiles) -> int | None:
        """The tokenizer's beginning-of-sequence id, unless it has none or it is the padding id."""
        token = files.special_token("bos_token")
        if token is None:
            return None
        bos = tokenizer.token_to_id(token)
        pad_token = files.special_token("pad_token")
        pad = tokenizer.token_to_id(pad_token) if pad_token is not None else None
        return None if bos is None or bos == pad else int(bos)

    def pad_id(self, tokenizer: Any, files: ModelFiles) -> int | None:
        for token in (files.special_token("pad_token"), files.special_token("eos_token")):
            if token is not None and tokenizer.token_to_id(token) is not None:
                return int(tokenizer.token_to_id(token))
        value = files.hf_config.get("pad_token_id")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def score_token_ids(self, tokenizer: Any) -> list[int]:
        """The token ids whose logits make the score, in :attr:`score_tokens` order."""
        ids = []
        for text, _ in self.score_tokens:
            if self.token_lookup == "vocabulary":
                found = tokenizer.token_to_id(text)
            else:
                encoded = _ids(tokenizer, text)
                found = encoded[0] if encoded else None
            if found is None:
                raise ModelIntegrityError(f"family {self.name!r}: the tokenizer has no token for {text!r}")
            ids.append(int(found))
        return ids

    # ------------------------------------------------------------------ model
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
        from crossrank.families.torch_modules import TokenLogitModule, load_pretrained

        if tokenizer is None:
            tokenizer = load_tokenizer(files.path / "tokenizer.json")
        model = load_pretrained("AutoModelForCausalLM", files, dtype=dtype, trust_remote_code=trust_remote_code, **load_options)
        return TokenLogitModule(model, files, self.score_token_ids(tokenizer), [w for _, w in self.score_tokens])


def load_tokenizer(path: Any) -> Any:
    """A model folder's ``tokenizer.json``, with any padding and truncation it carries switched off."""
    from pathlib import Path

    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(Path(path)))
    except Exception as exc:  # tokenizers raises plain Exception subclasses for bad JSON
        raise ModelIntegrityError(f"cannot load tokenizer {path}: {exc}") from None
    # Some tokenizer.json files pad or truncate every text; pairs are laid out by the encoder.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


class Qwen3RerankerFamily(TokenLogitFamily):
    """Qwen3-Reranker: P(yes) from the softmax over the "no"/"yes" logits after the card's chat prompt."""

    name = "qwen3-reranker"
    description = "Qwen3-Reranker 0.6B/4B/8B (Qwen3ForCausalLM): yes/no judgement after the model card's chat prompt"
    scoring = (
        "raw score = logit('yes') - logit('no') at the last token; probability = sigmoid(raw) = the model card's "
        "P(yes) from the softmax over the two logits, until a calibration is fitted"
    )
    instruction_aware = True
    default_instruction = "Given a web search query, retrieve relevant passages that answer the query"
    known_models = ("Qwen/Qwen3-Reranker-0.6B", "Qwen/Qwen3-Reranker-4B", "Qwen/Qwen3-Reranker-8B")
    token_lookup = "vocabulary"
    score_tokens = (("no", -1.0), ("yes", 1.0))
    template = PromptTemplate(
        prefix=(
            "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
            'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
        ),
        query="<Instruct>: {instruction}\n<Query>: {query}\n",
        document="<Document>: {document}",
        suffix=("<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",),
    )

    def __init__(self, **overrides: Any) -> None:
        super().__init__(**overrides)


class BgeLlmRerankerFamily(TokenLogitFamily):
    """FlagEmbedding's LLM rerankers (bge-reranker-v2-gemma): the "Yes" logit after its prompt."""

    name = "bge-llm-reranker"
    description = "FlagEmbedding FlagLLMReranker models (bge-reranker-v2-gemma): 'Yes' logit after its A/B prompt"
    scoring = (
        "raw score = logit('Yes') at the last token, FlagLLMReranker's score; probability = sigmoid(raw) "
        "(FlagEmbedding's normalize=True) until a calibration is fitted"
    )
    known_models = ("BAAI/bge-reranker-v2-gemma",)
    score_tokens = (("Yes", 1.0),)
    template = PromptTemplate(
        bos=True,
        query="A: {query}",
        separator="\n",
        document="B: {document}",
        suffix=(
            "\n",
            "Given a query A and a passage B, determine whether the passage contains an answer to the query by "
            "providing a prediction of either 'Yes' or 'No'.",
        ),
    )

    def __init__(self, **overrides: Any) -> None:
        super().__init__(**overrides)


class MxbaiRerankV2Family(TokenLogitFamily):
    """mixedbread mxbai-rerank v2: logit("1") - logit("0") after its task prompt."""

    name = "mxbai-rerank-v2"
    description = "mixedbread mxbai-rerank-base-v2/large-v2 (Qwen2ForCausalLM): 1/0 relevance judgement after its task prompt"
    scoring = (
        "raw score = logit('1') - logit('0') at the last token, as mxbai-rerank's MxbaiRerankV2 computes it; "
        "probability = sigmoid(raw) until a calibration is fitted"
    )
    instruction_aware = True
    default_instruction = None
    known_models = ("mixedbread-ai/mxbai-rerank-base-v2", "mixedbread-ai/mxbai-rerank-large-v2")
    score_tokens = (("0", -1.0), ("1", 1.0))
    template = PromptTemplate(
        prefix="<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n",
        query="query: {query}",
        instructed_query="instruction: {instruction}\nquery: {query}",
        separator="\n",
        document="document: {document}",
        suffix=(
            "\n",
            "You are a search relevance expert who evaluates how well documents match search queries. For each "
            "query-document pair, carefully analyze the semantic relationship between them, then provide your "
            "binary relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:",
            "<|im_end|>\n<|im_start|>assistant\n",
        ),
    )

    def __init__(self, **overrides: Any) -> None:
        super().__init__(**overrides)
