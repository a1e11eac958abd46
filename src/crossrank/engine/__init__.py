"""The reranking engine's stages: load, score, decide, serve.

- :mod:`crossrank.engine.loading`: a configuration to a :class:`~crossrank.engine.loading.LoadedModel`
  (backend, encoder, model config, calibration) and its scorer identity;
- :mod:`crossrank.engine.requests`: inputs checked once;
- :mod:`crossrank.engine.scoring`: the batch path and the score cache;
- :mod:`crossrank.engine.decision`: the keep/abstain decision, one pure function;
- :mod:`crossrank.engine.ranking`: the primary path (score, then decide each query, then stats);
- :mod:`crossrank.engine.serving`: disabled pass-through, deadline, confidence, fallback.

:class:`crossrank.Reranker` is the facade that holds them together.
"""

from __future__ import annotations

from crossrank.engine.decision import Decision, Policy, decide
from crossrank.engine.loading import LoadedModel, load_model, scorer_id, scorer_identity

__all__ = ["Decision", "LoadedModel", "Policy", "decide", "load_model", "scorer_id", "scorer_identity"]
