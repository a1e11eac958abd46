"""A numpy "model" registered through the plugin hooks, for engine tests that need no torch.

The folder it scores has a real WordPiece tokenizer (built with ``tokenizers``) and a
``crossrank.json`` but no weights; the backend scores a row by how many of its document tokens
also occur in its query, so relevance is predictable and deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crossrank import BackendSpec, ModelConfig, hookimpl
from crossrank.plugins import new_plugin_manager

WORDS = "the a of in is and capital city paris france berlin germany cat dog water population river".split()


def build_overlap_model(folder: Path) -> Path:
    """A model folder with a WordPiece tokenizer and no weights, scored by :class:`OverlapBackend`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    ModelConfig(name="test/overlap", revision="v1", tokenizer_file="tokenizer.json", max_length=64).save(folder)
    return folder


class OverlapBackend:
    """logit = 2 * (document tokens that occur in the query) - 3."""

    name = "overlap"
    batch_invariant = True

    def __init__(self, model_dir: Path, config: ModelConfig, device: str, options: dict[str, Any]) -> None:
        self.calls = 0
        self.closed = False

    def score(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        if self.closed:
            raise RuntimeError("the overlap backend was used after close()")
        self.calls += 1
        out = np.empty(len(input_ids), dtype=np.float32)
        for row, (ids, mask, types) in enumerate(zip(input_ids, attention_mask, token_type_ids)):
            query = {int(t) for t, m, s in zip(ids, mask, types) if m and s == 0 and t > 3}
            document = [int(t) for t, m, s in zip(ids, mask, types) if m and s == 1 and t > 3]
            out[row] = 2.0 * sum(t in query for t in document) - 3.0
        return out

    def close(self) -> None:
        self.closed = True


class OverlapPlugin:
    @hookimpl
    def crossrank_backends(self) -> list[BackendSpec]:
        return [BackendSpec(name="overlap", factory=OverlapBackend, description="token overlap (tests)")]


def overlap_plugins() -> Any:
    """A plugin manager with the overlap backend and the built-ins, no entry points."""
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(OverlapPlugin(), name="overlap-plugin")
    return manager
