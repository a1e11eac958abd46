"""Decide stage: which documents one query keeps, in which order, or whether it abstains.

:func:`decide` is the only place where crossrank turns raw scores into a kept, ordered list.
:meth:`crossrank.Reranker.rerank` and ``crossrank eval`` both call it, so an evaluation
measures exactly what reranking returns. It is pure: numbers in, a :class:`Decision` out.

The rules, in order:

1. probabilities are the calibration's transform of the logits, clipped to [0, 1];
2. documents are ranked by probability, then logit, then input position (stable);
3. a probability threshold keeps the documents whose probability is at least the cut;
4. with ``threshold="calibrated"`` the model's fitted abstention rule (if any) may then drop
   every document of the query;
5. with first-stage fusion, the kept documents are re-ordered by the fused score, computed over
   the whole candidate list so that a document's value does not depend on the cut;
6. ``top_k`` cuts the list last.

Example:
    >>> import numpy as np
    >>> from crossrank.calibration import Calibration
    >>> from crossrank.engine.decision import Policy, decide
    >>> decision = decide(np.array([-2.0, 3.0, 0.5]), Calibration(), Policy(threshold=0.5, top_k=1))
    >>> decision.kept, decision.abstained, decision.dropped
    ((1,), False, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossrank.calibration import Calibration
from crossrank.errors import ConfigurationError

__all__ = ["Decision", "Policy", "decide", "resolve_cut"]


@dataclass(frozen=True)
class Policy:
    """What to keep for one query.

    Attributes:
        threshold: A probability cut, ``"calibrated"`` (the calibration's fitted cut and
            abstention rule), or None for no cut.
        top_k: Most documents returned after the cut, or None for all that pass.
        first_stage_weight: Weight of the retriever's scores in the order of the kept
            documents, in [0, 1], or ``"auto"`` (0.3 when the query has retriever scores);
            0 orders by the reranker alone.
    """

    threshold: float | str | None = None
    top_k: int | None = None
    first_stage_weight: float | str = 0.0


@dataclass(frozen=True)
class Decision:
    """The outcome for one query.

    Attributes:
        order: Every document's index, best first by the reranker's probability.
        kept: The indices returned, in their final order.
        probabilities: Every document's calibrated probability, in input order.
        cut: The probability cut applied (None when there was none).
        abstained: True when the cut or the abstention rule left nothing.
        dropped: Documents removed by the cut or the abstention rule (not by ``top_k``).
        best_score: The highest probability (None for an empty list).
        first_stage_weight: The weight the order was fused with (0: the reranker alone).
    """

    order: tuple[int, ...]
    kept: tuple[int, ...]
    probabilities: np.ndarray
    cut: float | None
    abstained: bool
    dropped: int
    best_score: float | None
    first_stage_weight: float = 0.0


def resolve_cut(threshold: float | str | None, calibration: Calibration) -> float | None:
    """The probability cut a threshold stands for (``"calibrated"``: the calibration's fitted one)."""
    if threshold is None or threshold is False:
        return None
    if threshold == "calibrated":
        if calibration.threshold is None:
            raise ConfigurationError(
                "threshold='calibrated' needs a fitted threshold in the model's calibration.json; "
                "this model has none (fit one with 'crossrank tune' or pass a probability)"
            )
        return calibration.threshold
    return float(threshold)


def decide(
    logits: np.ndarray,
    calibration: Calibration,
    policy: Policy,
    first_stage: np.ndarray | None = None,
) -> Decision:
    """Apply ``policy`` to one query's raw scores (see the module docstring for the rules).

    Args:
        logits: The query's raw scores, one per document, in input order.
        calibration: Maps logits to probabilities; holds the fitted cut and abstention rule.
        policy: Threshold, top-k and fusion weight.
        first_stage: The retriever's scores in input order; used when the policy's weight is
            above 0.
    """
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    cut = resolve_cut(policy.threshold, calibration)
    if logits.size == 0:
        return Decision((), (), np.zeros(0), cut, False, 0, None)
    probabilities = np.clip(calibration.calibrator.transform(logits), 0.0, 1.0)
    order = sorted(range(len(logits)), key=lambda i: (-probabilities[i], -logits[i], i))
    kept = order
    if cut is not None:
        kept = [i for i in order if probabilities[i] >= cut]
    if policy.threshold == "calibrated" and calibration.abstention is not None and kept:
        from crossrank.abstention import should_abstain

        if should_abstain(calibration.abstention, probabilities[order], logits[order]):
            kept = []
    abstained = cut is not None and not kept
    dropped = len(order) - len(kept)
    from crossrank.fusion import applied_weight, fuse_scores

    weight = applied_weight(policy.first_stage_weight, first_stage is not None)
    if weight > 0.0 and kept:
        fused = fuse_scores(logits, first_stage, first_stage_weight=weight)  # type: ignore[arg-type]
        kept = sorted(kept, key=lambda i: (-fused[i], -probabilities[i], i))
    if policy.top_k is not None:
        kept = kept[: policy.top_k]
    return Decision(
        order=tuple(order),
        kept=tuple(kept),
        probabilities=probabilities,
        cut=cut,
        abstained=abstained,
        dropped=dropped,
        best_score=float(probabilities[order[0]]),
        first_stage_weight=weight,
    )
