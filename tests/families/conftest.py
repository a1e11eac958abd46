from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from family_models import CLASSIFIERS, DECODERS, build_causal_lm, build_classifier, build_sentence_transformers

@pytest.fixture(scope="session")
def family_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``family_model(kind)``: a tiny random checkpoint of that kind, built once per session.

    Kinds: the classifier kinds in :data:`CLASSIFIERS`, the causal LMs in :data:`DECODERS`, and
    ``"st"`` (the BERT classifier saved as a sentence-transformers CrossEncoder, max_length 32,
    prompt ``"query: "``).
    """
    pytest.importorskip("torch")
    built: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("families")

    def get(kind: str) -> Path:
        if kind not in built:
            if kind in CLASSIFIERS:
                built[kind] = build_classifier(kind, root / kind)
            elif kind in DECODERS:
                built[kind] = build_causal_lm(kind, root / kind)
            elif kind == "st":
                pytest.importorskip("sentence_transformers")
                built[kind] = build_sentence_transformers(get("bert"), root / "st", max_length=32, prompt="query: ")
            else:
                raise ValueError(kind)
        return built[kind]

    return get
