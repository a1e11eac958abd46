"""Each family's score computed the way its own documentation computes it (transformers, no crossrank).

* classifiers: ``AutoTokenizer`` + ``AutoModelForSequenceClassification``, one pair at a time;
* sentence-transformers folders: ``CrossEncoder.predict``;
* Qwen3-Reranker: the model card's ``format_instruction`` / ``process_inputs`` / ``compute_logits``;
* FlagEmbedding ``FlagLLMReranker``: its ``A: {query}`` / ``B: {passage}`` inputs, the "Yes" logit;
* mxbai-rerank v2: ``MxbaiRerankV2.prepare_inputs`` and ``forward`` (``logit("1") - logit("0")``).

Each returns the raw score per pair (and the documented probability where the card computes one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

Pairs = Sequence[tuple[str, str]]


def classifier_reference(folder: Path, pairs: Pairs, *, max_length: int = 512) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    out = []
    with torch.no_grad():
        for query, document in pairs:
            inputs = tokenizer(query, document, return_tensors="pt", truncation="only_second", max_length=max_length)
            logits = model(**inputs).logits[0]
            out.append(float(logits[0]) if logits.shape[0] == 1 else float(logits[1] - logits[0]))
    return np.array(out)


def cross_encoder_reference(folder: Path, pairs: Pairs, *, activation: bool = False) -> np.ndarray:
    """``CrossEncoder.predict``: with its own activation (``activation=True``) or the raw logit."""
    import torch
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(folder), device="cpu")
    kwargs = {} if activation else {"activation_fn": torch.nn.Identity()}
    return np.asarray(model.predict(list(pairs), batch_size=4, **kwargs), dtype=np.float64)


def _only_second(first: list[int], second: list[int], max_length: int) -> list[int]:
    """``prepare_for_model(first, second, truncation="only_second", add_special_tokens=False)``
    (removed from recent transformers): the second sequence is cut from its end to fit."""
    return first + second[: max(0, max_length - len(first))]


QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def qwen3_reference(folder: Path, pairs: Pairs, *, instruction: str | None = None, max_length: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """The Qwen3-Reranker model card: left padding, P(yes) from log_softmax over (no, yes).

    Returns ``(logit(yes) - logit(no), P(yes))`` per pair, scored as one batch.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    token_false_id = tokenizer.convert_tokens_to_ids("no")
    token_true_id = tokenizer.convert_tokens_to_ids("yes")
    prefix_tokens = tokenizer.encode(QWEN3_PREFIX, add_special_tokens=False)
    suffix_tokens = tokenizer.encode(QWEN3_SUFFIX, add_special_tokens=False)
    if instruction is None:
        instruction = "Given a web search query, retrieve relevant passages that answer the query"
    texts = [f"<Instruct>: {instruction}\n<Query>: {q}\n<Document>: {d}" for q, d in pairs]
    inputs = tokenizer(
        texts, padding=False, truncation="longest_first", return_attention_mask=False,
        max_length=max_length - len(prefix_tokens) - len(suffix_tokens),
    )
    for i, ele in enumerate(inputs["input_ids"]):
        inputs["input_ids"][i] = prefix_tokens + ele + suffix_tokens
    inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)
    with torch.no_grad():
        batch_scores = model(**inputs).logits[:, -1, :]
    true_vector = batch_scores[:, token_true_id]
    false_vector = batch_scores[:, token_false_id]
    stacked = torch.nn.functional.log_softmax(torch.stack([false_vector, true_vector], dim=1), dim=1)
    return (stacked[:, 1] - stacked[:, 0]).numpy().astype(np.float64), stacked[:, 1].exp().numpy().astype(np.float64)


FLAG_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by providing "
    "a prediction of either 'Yes' or 'No'."
)


def flag_llm_reference(folder: Path, pairs: Pairs, *, max_length: int = 512) -> np.ndarray:
    """FlagEmbedding's decoder-only reranker: ``[bos] A: q`` + ``\\n B: p`` + ``\\n`` + prompt, the "Yes" logit."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    yes_loc = tokenizer("Yes", add_special_tokens=False)["input_ids"][0]
    prompt_inputs = tokenizer(FLAG_PROMPT, return_tensors=None, add_special_tokens=False)["input_ids"]
    sep_inputs = tokenizer("\n", return_tensors=None, add_special_tokens=False)["input_ids"]
    items = []
    for query, passage in pairs:
        query_inputs = tokenizer(f"A: {query}", return_tensors=None, add_special_tokens=False, max_length=max_length * 3 // 4, truncation=True)
        passage_inputs = tokenizer(f"B: {passage}", return_tensors=None, add_special_tokens=False, max_length=max_length, truncation=True)
        first = query_inputs["input_ids"]
        if tokenizer.bos_token_id is not None and tokenizer.bos_token_id != tokenizer.pad_token_id:
            first = [tokenizer.bos_token_id] + first
        ids = _only_second(first, sep_inputs + passage_inputs["input_ids"], max_length + len(sep_inputs) + len(prompt_inputs))
        ids = ids + sep_inputs + prompt_inputs
        items.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    batch = tokenizer.pad(items, padding=True, pad_to_multiple_of=8, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    # FlagEmbedding's last_logit_pool: the last real token of each row, whichever side was padded.
    mask = batch["attention_mask"]
    if bool((mask[:, -1].sum() == mask.shape[0]).item()):
        last = logits[:, -1, :]
    else:
        lengths = mask.sum(dim=1) - 1
        last = torch.stack([logits[i, lengths[i], :] for i in range(logits.shape[0])])
    return last[:, yes_loc].numpy().astype(np.float64)


MXBAI_TASK = (
    "You are a search relevance expert who evaluates how well documents match search queries. For each query-document "
    "pair, carefully analyze the semantic relationship between them, then provide your binary relevance judgment "
    "(0 for not relevant, 1 for relevant).\nRelevance:"
)
MXBAI_PREFIX = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
MXBAI_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"


def mxbai_reference(folder: Path, pairs: Pairs, *, instruction: str | None = None, max_length: int = 8192) -> np.ndarray:
    """mxbai-rerank v2: chat prefix + query + sep + document + sep + task + chat suffix, left padded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()

    def ids(text: str) -> list[int]:
        return tokenizer(text, return_tensors=None, add_special_tokens=False)["input_ids"]

    yes_loc, no_loc = ids("1")[0], ids("0")[0]
    task, sep, prefix, suffix = ids(MXBAI_TASK), ids("\n"), ids(MXBAI_PREFIX), ids(MXBAI_SUFFIX)
    items = []
    for query, document in pairs:
        query_prompt = f"query: {query}"
        if instruction:
            query_prompt = "".join([f"instruction: {instruction}", "\n", query_prompt])
        query_inputs = tokenizer(query_prompt, return_tensors=None, add_special_tokens=False, max_length=max_length * 3 // 4, truncation=True)
        document_inputs = tokenizer(f"document: {document}", return_tensors=None, add_special_tokens=False, max_length=max_length, truncation=True)
        row = prefix + _only_second(query_inputs["input_ids"], sep + document_inputs["input_ids"], max_length) + sep + task + suffix
        items.append({"input_ids": row, "attention_mask": [1] * len(row)})
    batch = tokenizer.pad(items, padding="longest", pad_to_multiple_of=8, return_tensors="pt")
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return (logits[:, -1, yes_loc] - logits[:, -1, no_loc]).numpy().astype(np.float64)
