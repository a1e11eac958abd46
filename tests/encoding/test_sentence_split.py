"""Sentence selection splits scripts written without spaces after their sentence punctuation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.encoding import PairEncoder, split_sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("北京是中国的首都。你好吗？我很好！谢谢。", ["北京是中国的首都。", "你好吗？", "我很好！", "谢谢。"]),
        ("東京は日本の首都です。大阪は大きい都市です！本当？", ["東京は日本の首都です。", "大阪は大きい都市です！", "本当？"]),
        ("他说：“好。”然后走了；明白", ["他说：“好。”", "然后走了；", "明白"]),
        ("「行こう。」と言った｡次", ["「行こう。」", "と言った｡", "次"]),
        ("Fullwidth stop．次の文", ["Fullwidth stop．", "次の文"]),
        ("यह एक वाक्य है। यह दूसरा है॥ अंत", ["यह एक वाक्य है। ", "यह दूसरा है॥ ", "अंत"]),
        ("هل هذا سؤال؟نعم۔ انتهى", ["هل هذا سؤال؟", "نعم۔ ", "انتهى"]),
        ("It rained.東京は晴れ", ["It rained.", "東京は晴れ"]),
        ("Pi is 3.14 here. Next line\nlast", ["Pi is 3.14 here. ", "Next line\n", "last"]),
    ],
)
def test_sentences_end_at_the_punctuation_of_each_script(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


@settings(max_examples=200, deadline=None)
@given(st.text(st.one_of(st.characters(), st.sampled_from(list("。！？；．｡।॥؟۔.!?;: \n”」）")))))
def test_sentences_join_back_into_the_text(text: str) -> None:
    pieces = split_sentences(text)
    assert "".join(pieces) == text and all(pieces)


def _character_wordpiece(text: str) -> Any:
    """A BERT-style WordPiece tokenizer whose vocabulary holds every character of ``text``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"]
    characters = sorted(set(text) - {" "})
    vocab = {token: i for i, token in enumerate(dict.fromkeys(specials + characters + ["##" + c for c in characters]))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tokenizer


CHINESE_FILLER = ["今天天气很好。", "我们去公园散步吧！", "他喜欢喝绿茶。", "这本书非常有趣？", "明天可能会下雨；", "猫在沙发上睡觉。"]
CHINESE_EVIDENCE = "珠穆朗玛峰高八千八百四十九米。"
JAPANESE_FILLER = ["今日はいい天気です。", "公園を散歩しましょう！", "彼は緑茶が好きです。", "この本はとても面白い？", "猫がソファで寝ています。"]
JAPANESE_EVIDENCE = "富士山の高さは三千七百七十六メートルです。"


@pytest.mark.parametrize(
    ("filler", "evidence", "query"),
    [
        (CHINESE_FILLER, CHINESE_EVIDENCE, "珠穆朗玛峰有多高"),
        (JAPANESE_FILLER, JAPANESE_EVIDENCE, "富士山の高さ"),
    ],
    ids=["chinese", "japanese"],
)
def test_selection_keeps_the_matching_sentence_of_unspaced_text(filler: list[str], evidence: str, query: str) -> None:
    document = "".join(filler * 4) + evidence  # no spaces anywhere; the evidence comes last
    tokenizer = _character_wordpiece(document + query)
    encoder = PairEncoder(tokenizer, max_length=48, max_query_length=12, long_documents="select")
    document_tokens = len(tokenizer.encode(document, add_special_tokens=False).ids)
    assert document_tokens > 4 * 48, "the document must be far longer than a row"
    segments, report = encoder.encode([query], [document], [0])
    kept = tokenizer.decode(segments[0].input_ids.tolist()).replace(" ", "")
    assert evidence in kept, kept
    assert report.truncated_documents == 1 and len(segments[0].input_ids) <= 48
    # Whole sentences in document order: the kept text is a concatenation of sentences.
    document_part = kept.split("[SEP]")[1]
    assert all(sentence in filler + [evidence] for sentence in split_sentences(document_part))


@pytest.mark.embedded
def test_embedded_selection_finds_chinese_evidence_past_the_row(embedded_model_dir: Path) -> None:
    encoder = PairEncoder.from_file(embedded_model_dir / "tokenizer.json", max_length=48, long_documents="select")
    document = "".join(CHINESE_FILLER * 3) + CHINESE_EVIDENCE
    segments, _ = encoder.encode(["珠穆朗玛峰有多高"], [document], [0])
    kept = encoder.tokenizer.decode(segments[0].input_ids.tolist()).replace(" ", "")
    # Characters missing from the vocabulary decode to nothing; compare decoded forms.
    evidence = encoder.tokenizer.decode(encoder.tokenizer.encode(CHINESE_EVIDENCE, add_special_tokens=False).ids)
    assert evidence.replace(" ", "") in kept
