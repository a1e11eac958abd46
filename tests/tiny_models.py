"""Builders for tiny, random, real models used across the test suite (no network, seconds to build)."""

from __future__ import annotations

import json
import string
from pathlib import Path

WORDS = (
    "the a an of to in is was for on that with as by it at from be this are or which paris france "
    "capital city berlin germany population river museum model rank query document passage relevant "
    "answer evidence long short cat dog sun moon water fire earth computer science protein cell gene "
    "what who where when how why many people live large small red blue green one two three"
).split()


def build_tokenizer(path: Path) -> Path:
    """A BERT-style WordPiece tokenizer with a small vocabulary, written as tokenizer.json."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab_list = specials + WORDS + chars + ["##" + c for c in string.ascii_lowercase + string.digits]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(vocab_list))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


def build_tiny_bert(folder: Path, *, seed: int = 0, max_positions: int = 128, num_labels: int = 1) -> Path:
    """A 2-layer random BertForSequenceClassification saved as safetensors plus tokenizer.json."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_path = build_tokenizer(folder / "tokenizer.json")
    vocab_size = len(json.loads(tokenizer_path.read_text())["model"]["vocab"])
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        type_vocab_size=2,
        num_labels=num_labels,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config)
    # Larger random weights than the default init make scores spread out enough to rank.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(4.0)
    model.eval()
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def export_onnx(folder: Path, target: Path | None = None) -> Path:
    """Export the folder's PyTorch model to fp32 ONNX (opset 14) with dynamic batch and length."""
    import torch
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(str(folder), attn_implementation="eager").eval()
    target = target or folder / "model.onnx"
    ids = torch.ones((2, 8), dtype=torch.long)
    dynamic = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(target),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["logits"],
        dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "token_type_ids": dynamic, "logits": {0: "batch"}},
        opset_version=14,
        dynamo=False,
    )
    return target


def quantize_dynamic(source: Path, target: Path) -> Path:
    """ONNX Runtime's per-tensor dynamic int8 quantization of an fp32 graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic as ort_quantize_dynamic

    ort_quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return target
