"""Tiny random checkpoints of every model family, with real tokenizer kinds (no network, seconds to build).

Tokenizers are built with ``tokenizers``:

* WordPiece (BERT style: ``[CLS] q [SEP] d [SEP]`` with token types);
* SentencePiece-style Unigram with a Metaspace pre-tokenizer (XLM-R, DeBERTa-v3, Gemma);
* byte-level BPE with Qwen's pre-tokenizer regex and chat special tokens
  (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``).

Every folder also gets ``tokenizer_config.json`` so that ``transformers.AutoTokenizer`` (the
reference implementations in the tests) loads the same tokenizer.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from tiny_models import WORDS, build_tokenizer

CORPUS = [
    "what is the capital of france",
    "paris is the capital and largest city of france",
    "berlin is the capital of germany and its largest city",
    "the river flows through the city to the sea",
    "how many people live in paris",
    "cats and dogs are popular pets around the world",
    "the sun is a star and the moon orbits the earth",
    "protein folding in the cell depends on the gene",
    "water boils at one hundred degrees",
    "yes no yes no Yes No 1 0 relevant irrelevant",
    "Is the document relevant? yes or no. Answer: yes",
    "query: document: instruction: A: B: <Query>: <Document>: <Instruct>:",
    "東京は日本の首都です。大阪は大きな都市です。",
    "Über die Brücke gehen viele Menschen. Café, naïve, résumé.",
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided.",
    "Given a query A and a passage B, determine whether the passage contains an answer to the query",
    "You are a search relevance expert who evaluates how well documents match search queries.",
    "Given a web search query, retrieve relevant passages that answer the query",
]

CLASSIFIERS = ("bert", "electra", "distilbert", "modernbert", "xlm-roberta", "deberta-v2", "qwen3-seq-cls")
DECODERS = {"qwen3": "qwen3-reranker", "gemma": "bge-llm-reranker", "qwen2": "mxbai-rerank-v2"}
"""Tiny causal LMs and the family that scores each (Qwen3-Reranker, bge-reranker-v2-gemma, mxbai-rerank v2)."""

PAIRS = [
    ("what is the capital of france", "paris is the capital and largest city of france"),
    ("how many people live in paris", "the river flows through the city to the sea"),
    ("東京は首都ですか", "東京は日本の首都です。大阪は大きな都市です。"),
    ("cats?", "cats and dogs are popular pets around the world " * 4),
    ("Über die Brücke?", "Über die Brücke gehen viele Menschen. Café, naïve, résumé."),
    ("capital", "capital"),
]
"""Mixed lengths and scripts: scored in one batch they are right-padded to very different lengths."""


QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHAT_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _corpus() -> list[str]:
    # The score tokens ("yes", "no", "Yes", "1", "0") must be single tokens, as in the real vocabularies.
    return CORPUS * 3 + [" ".join(WORDS)] * 3 + ["yes no yes no no yes Yes No 1 0"] * 20 + ["no", "yes", "Yes"] * 20


def _save_tokenizer_config(tokenizer: Any, folder: Path, *, model_max_length: int, input_names: list[str], **special: str) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=model_max_length, model_input_names=input_names, **special
    )
    fast.save_pretrained(str(folder))


# ---------------------------------------------------------------------------------- tokenizers
def wordpiece_tokenizer(folder: Path, *, model_max_length: int = 512, input_names: list[str] | None = None) -> Any:
    from tokenizers import Tokenizer

    build_tokenizer(folder / "tokenizer.json")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    _save_tokenizer_config(
        tokenizer, folder, model_max_length=model_max_length,
        input_names=input_names or ["input_ids", "token_type_ids", "attention_mask"],
        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
    )
    return tokenizer


def unigram_tokenizer(
    folder: Path, *, template: str, model_max_length: int = 512, input_names: list[str] | None = None, vocab_size: int = 600
) -> Any:
    """SentencePiece-style Unigram with Metaspace; ``template``: ``"xlmr"``, ``"deberta"`` or ``"gemma"``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if template == "xlmr":
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        unk = "<unk>"
    elif template == "deberta":
        specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
        unk = "[UNK]"
    else:
        specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
        unk = "<unk>"
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token=unk,
        initial_alphabet=list(string.ascii_letters + string.digits + string.punctuation),
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    ids = {token: tokenizer.token_to_id(token) for token in specials}
    if template == "xlmr":
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
        )
        special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}
    elif template == "deberta":
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
        )
        special = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
    else:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", ids["<bos>"])]
        )
        special = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    _save_tokenizer_config(
        tokenizer, folder, model_max_length=model_max_length,
        input_names=input_names or ["input_ids", "attention_mask"], **special,
    )
    return tokenizer


def chat_bpe_tokenizer(folder: Path, *, model_max_length: int = 32768, vocab_size: int = 700) -> Any:
    """Byte-level BPE with Qwen's pre-tokenizer and chat special tokens; adds no special tokens itself."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, special_tokens=[AddedToken(t, special=True) for t in CHAT_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    _save_tokenizer_config(
        tokenizer, folder, model_max_length=model_max_length, input_names=["input_ids", "attention_mask"],
        pad_token="<|endoftext|>", eos_token="<|im_end|>",
    )
    return tokenizer


# ---------------------------------------------------------------------------------- models
def _scale(model: Any, factor: float) -> Any:
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(factor)
    return model.eval()


def _small(**overrides: Any) -> dict[str, Any]:
    return {
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, **overrides,
    }


def build_classifier(kind: str, folder: Path, *, seed: int = 0, num_labels: int = 1, max_positions: int | None = None) -> Path:
    """A 2-layer random sequence classifier.

    ``kind``: ``bert``, ``electra``, ``distilbert``, ``modernbert`` (WordPiece), ``xlm-roberta``,
    ``deberta-v2`` (Unigram), ``qwen3-seq-cls`` (chat BPE, no ``pad_token_id``).
    """
    import torch
    import transformers as t

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if kind in ("bert", "electra", "distilbert", "modernbert"):
        names = ["input_ids", "token_type_ids", "attention_mask"] if kind in ("bert", "electra") else ["input_ids", "attention_mask"]
        tokenizer = wordpiece_tokenizer(folder, input_names=names, model_max_length=8192 if kind == "modernbert" else 512)
    elif kind == "xlm-roberta":
        tokenizer = unigram_tokenizer(folder, template="xlmr")
    elif kind == "deberta-v2":
        tokenizer = unigram_tokenizer(folder, template="deberta")
    elif kind == "qwen3-seq-cls":
        tokenizer = chat_bpe_tokenizer(folder)
    else:
        raise ValueError(kind)
    vocab = tokenizer.get_vocab_size()
    if kind == "bert":
        config = t.BertConfig(vocab_size=vocab, max_position_embeddings=max_positions or 512, type_vocab_size=2, num_labels=num_labels, **_small())
        model = t.BertForSequenceClassification(config)
    elif kind == "electra":
        config = t.ElectraConfig(vocab_size=vocab, embedding_size=32, max_position_embeddings=max_positions or 512, type_vocab_size=2, num_labels=num_labels, **_small())
        model = t.ElectraForSequenceClassification(config)
    elif kind == "distilbert":
        config = t.DistilBertConfig(
            vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=64, dropout=0.0, attention_dropout=0.0,
            max_position_embeddings=max_positions or 512, num_labels=num_labels, pad_token_id=0,
        )
        model = t.DistilBertForSequenceClassification(config)
    elif kind == "modernbert":
        config = t.ModernBertConfig(
            vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=max_positions or 8192, num_labels=num_labels, pad_token_id=0,
            cls_token_id=tokenizer.token_to_id("[CLS]"), sep_token_id=tokenizer.token_to_id("[SEP]"),
            bos_token_id=tokenizer.token_to_id("[CLS]"), eos_token_id=tokenizer.token_to_id("[SEP]"),
            global_attn_every_n_layers=1, local_attention=16, attention_dropout=0.0, embedding_dropout=0.0, mlp_dropout=0.0,
            classifier_pooling="mean",
        )
        model = t.ModernBertForSequenceClassification(config)
    elif kind == "xlm-roberta":
        config = t.XLMRobertaConfig(
            vocab_size=vocab, max_position_embeddings=(max_positions or 512) + 2, type_vocab_size=1, num_labels=num_labels,
            pad_token_id=tokenizer.token_to_id("<pad>"), bos_token_id=tokenizer.token_to_id("<s>"), eos_token_id=tokenizer.token_to_id("</s>"),
            **_small(),
        )
        model = t.XLMRobertaForSequenceClassification(config)
    elif kind == "deberta-v2":
        config = t.DebertaV2Config(
            vocab_size=vocab, max_position_embeddings=max_positions or 512, type_vocab_size=0, num_labels=num_labels,
            relative_attention=True, position_buckets=64, pos_att_type=["p2c", "c2p"], position_biased_input=False,
            pad_token_id=tokenizer.token_to_id("[PAD]"), **_small(),
        )
        model = t.DebertaV2ForSequenceClassification(config)
    else:
        config = t.Qwen3Config(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=max_positions or 4096, num_labels=num_labels,
            tie_word_embeddings=False,
        )
        config.pad_token_id = None
        model = t.Qwen3ForSequenceClassification(config)
    # Larger random weights than the default init spread the scores enough to rank.
    _scale(model, 4.0 if kind not in ("modernbert", "qwen3-seq-cls") else 2.0)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def build_causal_lm(kind: str, folder: Path, *, seed: int = 0, max_positions: int = 4096) -> Path:
    """A 2-layer random causal LM: ``qwen3`` and ``qwen2`` (chat BPE), ``gemma`` (Unigram with <bos>)."""
    import torch
    import transformers as t

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if kind in ("qwen3", "qwen2"):
        tokenizer = chat_bpe_tokenizer(folder)
    elif kind == "gemma":
        tokenizer = unigram_tokenizer(folder, template="gemma", model_max_length=8192)
    else:
        raise ValueError(kind)
    vocab = tokenizer.get_vocab_size()
    common = {
        "vocab_size": vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": max_positions, "tie_word_embeddings": True,
    }
    if kind == "qwen3":
        model = t.Qwen3ForCausalLM(t.Qwen3Config(**common))
    elif kind == "qwen2":
        common.pop("head_dim")
        model = t.Qwen2ForCausalLM(t.Qwen2Config(**common))
    else:
        model = t.GemmaForCausalLM(
            t.GemmaConfig(**common, pad_token_id=tokenizer.token_to_id("<pad>"), bos_token_id=tokenizer.token_to_id("<bos>"),
                          eos_token_id=tokenizer.token_to_id("<eos>"))
        )
    _scale(model, 3.0)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def build_sentence_transformers(source: Path, folder: Path, *, max_length: int, prompt: str | None = None) -> Path:
    """Save a classifier folder as a sentence-transformers CrossEncoder (its own files, its own settings)."""
    from sentence_transformers import CrossEncoder

    prompts = {"query": prompt} if prompt else None
    encoder = CrossEncoder(str(source), max_length=max_length, prompts=prompts, default_prompt_name="query" if prompt else None)
    encoder.save_pretrained(str(folder))
    return folder


def hub_config(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "config.json").read_text())
