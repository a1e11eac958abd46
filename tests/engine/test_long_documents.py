"""Query-safe truncation and long-document windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossrank import ConfigurationError, Reranker
from crossrank.encoding import PairEncoder

FILLER = (
    "The committee met on Tuesday to discuss the schedule for the coming quarter. "
    "Several members raised questions about the budget for office supplies and travel. "
)
EVIDENCE = "Mount Everest is 8,849 metres tall, the highest mountain above sea level."
QUESTION = "How tall is Mount Everest?"


@pytest.mark.embedded
def test_evidence_past_the_first_window_is_found_only_with_windows(embedded_model_dir: Path) -> None:
    document = FILLER * 16 + EVIDENCE  # the evidence starts after ~430 tokens
    distractor = FILLER * 16
    truncating = Reranker(str(embedded_model_dir), max_length=128)
    encoder = truncating._load().encoder
    evidence_start = len(encoder.tokenizer.encode(FILLER * 16, add_special_tokens=False).ids)
    assert evidence_start > 3 * 128, "the evidence must sit well past the first max_length tokens"

    truncated = truncating.rerank(QUESTION, [distractor, document], threshold="calibrated")
    assert truncated.stats.truncated_documents == 2
    assert truncated.abstained, "with truncation the evidence is never seen: both texts look alike"

    windowing = Reranker(str(embedded_model_dir), max_length=128, long_documents="window", max_windows=16)
    found = windowing.rerank(QUESTION, [distractor, document], threshold="calibrated")
    assert [d.index for d in found] == [1], "only the document holding the evidence passes"
    assert found[0].raw_score > truncating.score([(QUESTION, document)], raw=True)[0] + 5
    assert found.stats.windowed_documents == 2 and found.stats.windows > 4
    assert found.stats.truncated_documents == 0


def test_windows_cover_the_whole_document(tiny_model_dir: Path) -> None:
    encoder = PairEncoder.from_file(tiny_model_dir / "tokenizer.json", max_length=32, long_documents="window", window_overlap=4, max_windows=100)
    document = " ".join(["cat dog sun moon"] * 30)  # 120 tokens
    segments, report = encoder.encode(["what"], [document], [0])
    doc_tokens = encoder.tokenizer.encode(document, add_special_tokens=False).ids
    covered = set()
    budget = 32 - 3 - 1
    for index, segment in enumerate(segments):
        assert len(segment.input_ids) <= 32
        start = index * (budget - 4)
        covered.update(range(start, min(start + budget, len(doc_tokens))))
        assert list(segment.input_ids[1:2]) == encoder.tokenizer.encode("what", add_special_tokens=False).ids
    assert covered == set(range(len(doc_tokens)))
    assert report.windows == len(segments) and report.windowed_documents == 1


def test_max_windows_cuts_and_reports(tiny_model_dir: Path) -> None:
    encoder = PairEncoder.from_file(tiny_model_dir / "tokenizer.json", max_length=32, long_documents="window", max_windows=2)
    segments, report = encoder.encode(["what"], ["cat " * 500], [0])
    assert len(segments) == 2 and report.truncated_documents == 1


def test_long_query_is_capped_explicitly_and_document_keeps_room(tiny_model_dir: Path) -> None:
    reranker = Reranker(str(tiny_model_dir), max_length=64, max_query_length=16)
    result = reranker.rerank("what is the capital " * 40, ["paris is the capital of france " * 20])
    assert result.stats.truncated_queries == 1
    assert result.stats.truncated_documents == 1
    encoder = reranker._load().encoder
    segments, _ = encoder.encode(["what " * 100], ["paris " * 100], [0])
    types = segments[0].token_type_ids.tolist()
    assert types.count(0) == 16 + 2 and len(types) == 64  # [CLS] + 16 query tokens + [SEP]


def test_query_length_that_leaves_no_room_is_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="leaves no room"):
        Reranker(str(tiny_model_dir), max_length=32, max_query_length=40).warm_up()


def test_mean_pooling_differs_from_max(tiny_model_dir: Path) -> None:
    text = "paris is the capital of france " + "gene protein cell " * 60
    best = Reranker(str(tiny_model_dir), max_length=32, long_documents="window", window_pooling="max").score([("capital", text)], raw=True)
    mean = Reranker(str(tiny_model_dir), max_length=32, long_documents="window", window_pooling="mean").score([("capital", text)], raw=True)
    assert best[0] > mean[0]


def test_select_keeps_the_query_related_sentences_in_order(tiny_model_dir: Path) -> None:
    encoder = PairEncoder.from_file(tiny_model_dir / "tokenizer.json", max_length=40, long_documents="select")
    sentences = [
        "the cat and the dog.",
        "the sun and the moon.",
        "paris is the capital of france.",
        "the water of the river.",
        "berlin is a large city.",
        "the protein and the gene.",
    ]
    document = " ".join(sentences * 2)
    segments, report = encoder.encode(["capital of france"], [document], [0])
    assert report.truncated_documents == 1
    kept = encoder.tokenizer.decode(segments[0].input_ids.tolist())
    assert "paris is the capital of france" in kept
    assert len(segments[0].input_ids) <= 40
    # Document order is kept: the first selected sentence precedes the later ones.
    assert kept.index("paris") < kept.rindex("france")


def test_select_without_overlap_keeps_leading_sentences(tiny_model_dir: Path) -> None:
    encoder = PairEncoder.from_file(tiny_model_dir / "tokenizer.json", max_length=24, long_documents="select")
    document = "the cat and the dog. the sun and the moon. the water of the river. " * 3
    segments, _ = encoder.encode(["gene protein"], [document], [0])
    assert encoder.tokenizer.decode(segments[0].input_ids.tolist()).split("[SEP]")[1].strip().startswith("the cat")


@pytest.mark.embedded
def test_select_finds_late_evidence_in_one_pass(embedded_model_dir: Path) -> None:
    document = FILLER * 16 + EVIDENCE
    reranker = Reranker(str(embedded_model_dir), max_length=128, long_documents="select")
    result = reranker.rerank(QUESTION, [FILLER * 16, document])
    assert result[0].index == 1
    assert result[0].raw_score - result[1].raw_score > 10
    truncated = Reranker(str(embedded_model_dir), max_length=128, long_documents="truncate").score([(QUESTION, document)], raw=True)[0]
    assert result[0].raw_score > truncated + 10, "selection sees the evidence that truncation cuts off"
    assert result.stats.pairs_scored == 2 and result.stats.truncated_documents == 2
