"""A huge text costs what can be kept of it, and reading a prefix changes no kept token.

The encoder tokenizes a long text from a prefix of its characters. These tests check, on four
real tokenizer kinds (BERT WordPiece, GPT-2 byte-level BPE, a Qwen-style split-then-byte-level
BPE and a SentencePiece-style Unigram with Metaspace), that the rows and counts are exactly those
of tokenizing every text whole, and that a multi-megabyte document or query never reaches the
tokenizer whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossrank import encoding
from crossrank.encoding import PairEncoder

from tiny_models import build_tokenizer

CORPUS = [
    "the committee met on tuesday to discuss the schedule for the coming quarter.",
    "a b a b c the cat and the dog, it's done: 3.14 is pi! 1234567 numbers don't",
    "Mount Everest is 8,849 metres tall, the highest mountain above sea level.",
    "naïve café résumé über straße", "東京は日本の首都です。大阪は大きい都市です！",
    "北京是中国的首都。你好吗？我很好；谢谢。", "यह एक वाक्य है। यह दूसरा है।", "هل هذا سؤال؟ نعم.",
    "emoji 😀 🚀 tabs\tand\nnew lines  double  spaces",
] * 20
# The pre-tokenizer regex of Qwen2/Qwen3 tokenizers (runs of letters take one leading symbol,
# punctuation runs take trailing line breaks, digits stand alone).
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TOKENIZER_KINDS = ["wordpiece", "byte-level-bpe", "qwen-split-bpe", "unigram-metaspace"]


def _with_pair_template(tokenizer: Any) -> Any:
    from tokenizers import processors

    start, end = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", start), ("</s>", end)]
    )
    return tokenizer


def _build(kind: str, folder: Path) -> Any:
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    if kind == "wordpiece":
        return Tokenizer.from_file(str(build_tokenizer(folder / "tokenizer.json")))
    if kind in ("byte-level-bpe", "qwen-split-bpe"):
        tokenizer = Tokenizer(models.BPE())
        if kind == "qwen-split-bpe":
            tokenizer.normalizer = normalizers.NFC()
            tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
                ]
            )
        else:
            tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=400, special_tokens=["<s>", "</s>", "<pad>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        tokenizer.train_from_iterator(CORPUS, trainer)
        return _with_pair_template(tokenizer)
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    # The pair template is read from the single-token probes "a" and "b".
    spec = json.loads(tokenizer.to_str())
    spec["model"]["vocab"] += [["\u2581a", -1.0], ["\u2581b", -1.0]]
    return _with_pair_template(Tokenizer.from_str(json.dumps(spec)))


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("tokenizers")
    return {kind: _build(kind, folder / kind) for kind in TOKENIZER_KINDS}


class RecordingTokenizer:
    """A real tokenizer that records the length of every text it is asked to encode."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.lengths: list[int] = []

    def encode(self, text: str, *args: Any, **kwargs: Any) -> Any:
        self.lengths.append(len(text))
        return self._tokenizer.encode(text, *args, **kwargs)

    def encode_batch(self, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        self.lengths.extend(len(t) for t in texts)
        return self._tokenizer.encode_batch(texts, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


def _rows(segments: list[Any]) -> list[tuple[int, list[int], list[int]]]:
    return [(s.pair, s.input_ids.tolist(), s.token_type_ids.tolist()) for s in segments]


# ----------------------------------------------------------------- prefix reading changes nothing
WORDS = ["the", "cat", "dog's", "naïve", "café", "3.14", "8,849", "東京は日本", "首都です。", "我很好；",
         "यह", "है।", "سؤال؟", "😀", "don't", "a", "b", "e\u0301", "\x00", "\ufeff", "\u200f", "tall,"]
word = st.one_of(
    st.sampled_from(WORDS),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
    st.text(st.sampled_from("abcé"), min_size=90, max_size=130),  # longer than WordPiece reads as one word
)
separator = st.sampled_from([" ", " ", " ", " ", "  ", "   ", " \n", "\n ", ". ", ", ", " - ", "\t ", " \u3000", "\xa0 "])
text = st.lists(st.tuples(word, separator), max_size=250).map(lambda parts: "".join(w + s for w, s in parts))

PROPERTY_SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
@PROPERTY_SETTINGS
@given(text=text, trailing_word=st.booleans(), needed=st.integers(1, 80), chars_per_token=st.integers(1, 8),
       search=st.integers(140, 400))
def test_leading_tokens_are_those_of_the_whole_text(
    tokenizers: dict[str, Any], kind: str, text: str, trailing_word: bool, needed: int, chars_per_token: int,
    search: int,
) -> None:
    if trailing_word:
        text += "end"
    tokenizer = tokenizers[kind]
    whole = tokenizer.encode(text, add_special_tokens=False)
    with pytest.MonkeyPatch.context() as patch:
        # Small prefixes and search windows put cuts everywhere in short generated texts.
        patch.setattr(encoding, "_FIRST_CHARS_PER_TOKEN", chars_per_token)
        patch.setattr(encoding, "_SLACK_CHARS", 0)
        patch.setattr(encoding, "_CEILING_SLACK_CHARS", 0)
        patch.setattr(encoding, "_CUT_SEARCH_CHARS", search)
        leading = PairEncoder(tokenizer, max_length=64)._leading_tokens([text], [needed])[0]
    if leading.complete:
        assert leading.ids == whole.ids and leading.text == text
        return
    assert text.startswith(leading.text) and len(leading.text) < len(text)
    # Fewer tokens than needed only once the most characters per token were read.
    assert len(leading.ids) >= needed or len(leading.text) >= needed * encoding._MAX_CHARS_PER_TOKEN
    if leading.exact:
        assert leading.ids == whole.ids[: len(leading.ids)]
        assert leading.offsets == whole.offsets[: len(leading.offsets)]
    else:  # only a prefix that is one unbroken "word" is taken as it is
        assert " " not in leading.text.rstrip(" ")[-search:]


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
@pytest.mark.parametrize("mode", ["truncate", "window", "select"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=st.lists(text, min_size=1, max_size=4), query=text, max_windows=st.integers(1, 4))
def test_rows_and_counts_equal_those_of_whole_texts(
    tokenizers: dict[str, Any], kind: str, mode: str, documents: list[str], query: str, max_windows: int
) -> None:
    tokenizer = tokenizers[kind]

    def encode(**constants: int) -> tuple[list[Any], Any]:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in constants.items():
                patch.setattr(encoding, name, value)
            encoder = PairEncoder(tokenizer, max_length=40, max_query_length=8, long_documents=mode, max_windows=max_windows)
            segments, report = encoder.encode([query], documents, [0] * len(documents))
        return _rows(segments), report

    reference = encode(_FIRST_CHARS_PER_TOKEN=10**9)  # every text tokenized whole
    assert encode(_FIRST_CHARS_PER_TOKEN=1, _SLACK_CHARS=0) == reference
    assert encode() == reference


# ------------------------------------------------------------------------ huge texts are bounded
def _huge_document(characters: int) -> str:
    sentence = "The committee met on Tuesday to discuss the schedule for the coming quarter. "
    return (sentence * (characters // len(sentence) + 1))[:characters]


def _ceiling(encoder: PairEncoder, needed: int) -> int:
    """The longest text the encoder may pass to the tokenizer for ``needed`` tokens."""
    return needed * encoding._MAX_CHARS_PER_TOKEN + encoding._CEILING_SLACK_CHARS + encoding._CUT_SEARCH_CHARS


@pytest.mark.parametrize("mode", ["truncate", "window", "select"])
def test_a_five_megabyte_document_is_read_only_as_far_as_it_can_be_kept(tiny_model_dir: Path, mode: str) -> None:
    from tokenizers import Tokenizer

    recording = RecordingTokenizer(Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json")))
    encoder = PairEncoder(recording, max_length=64, long_documents=mode, max_windows=4)
    document = _huge_document(5_000_000)
    segments, report = encoder.encode(["when did the committee meet"], [document, "the cat"], [0, 0])

    most = max(encoder.select_scan_tokens, encoder.max_windows * encoder.max_length) + 1
    assert max(recording.lengths) <= _ceiling(encoder, most) < len(document) // 100
    assert report.truncated_documents == 1
    assert report.partially_scanned_documents == (1 if mode == "select" else 0)
    rows = [s for s in segments if s.pair == 0]
    assert len(rows) == (4 if mode == "window" else 1) and report.windows == (4 if mode == "window" else 0)
    # Truncation and windows fill the row; selection keeps whole sentences that fit in it.
    assert all(len(s.input_ids) == 64 if mode != "select" else 40 < len(s.input_ids) <= 64 for s in rows)
    # The short document beside it is encoded whole and not counted.
    query_tokens = len(recording.encode("when did the committee meet", add_special_tokens=False).ids)
    assert [len(s.input_ids) for s in segments if s.pair == 1] == [query_tokens + 3 + 2]


def test_select_scans_a_bounded_prefix_and_counts_documents_it_cut(tiny_model_dir: Path) -> None:
    encoder = PairEncoder.from_file(tiny_model_dir / "tokenizer.json", max_length=32, long_documents="select", max_windows=2)
    assert encoder.select_scan_tokens == 64
    filler = "the cat and the dog. " * 20  # 120 tokens, past the 64-token scan
    evidence = "paris is the capital of france. "
    early, late = evidence + filler, filler + evidence
    segments, report = encoder.encode(["capital of france"], [early, late, evidence], [0, 0, 0])
    kept = {s.pair: encoder.tokenizer.decode(s.input_ids.tolist()) for s in segments}
    assert "paris is the capital of france" in kept[0]
    assert "paris" not in kept[1], "sentences past the scan bound are not considered"
    assert report.partially_scanned_documents == 2 and report.truncated_documents == 2


def test_a_huge_query_is_cut_without_being_read_whole(tiny_model_dir: Path) -> None:
    from tokenizers import Tokenizer

    recording = RecordingTokenizer(Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json")))
    encoder = PairEncoder(recording, max_length=64, max_query_length=16)
    query = "what is the capital of france " * 200_000  # 6 MB
    segments, report = encoder.encode([query], ["paris"], [0])
    assert max(recording.lengths) <= _ceiling(encoder, 17)
    assert report.truncated_queries == 1 and report.truncated_query_indices == {0}
    expected = recording.encode(query[:1000], add_special_tokens=False).ids[:16]
    assert segments[0].input_ids.tolist()[1:17] == expected


def test_text_without_word_ends_is_cut_at_the_ceiling_and_counted(tiny_model_dir: Path) -> None:
    from tokenizers import Tokenizer

    recording = RecordingTokenizer(Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json")))
    for mode in ("truncate", "window", "select"):
        encoder = PairEncoder(recording, max_length=32, long_documents=mode)
        recording.lengths.clear()
        spaces_then_words = " " * 3_000_000 + "the cat " * 10
        one_word = "x" * 3_000_000
        segments, report = encoder.encode(["what"], [spaces_then_words, one_word], [0, 0])
        assert max(recording.lengths) < 400_000
        assert report.truncated_documents == 2, mode
        # Nothing was readable in the spaces; the giant word is one unknown token, as when read whole.
        documents = [s.input_ids.tolist()[3:-1] for s in segments]
        assert documents == [[], [recording.token_to_id("[UNK]")]], mode


@pytest.mark.embedded
def test_embedded_tokenizer_truncates_a_huge_document_like_its_head(embedded_model_dir: Path) -> None:
    from crossrank import Reranker

    reranker = Reranker(str(embedded_model_dir), max_length=128, long_documents="truncate", cache=None)
    head = _huge_document(20_000)
    huge = _huge_document(5_000_000)
    result = reranker.rerank("when did the committee meet", [head, huge])
    assert result.stats.truncated_documents == 2
    scores = {d.index: d.raw_score for d in result}
    assert scores[0] == pytest.approx(scores[1], abs=1e-6)
