"""Ranking losses over groups of candidates.

Every loss takes ``scores`` (model logits, shape ``[groups, candidates]``), ``labels`` (graded
relevance, same shape), ``mask`` (True where a candidate exists; groups may be ragged) and
``teacher`` (a teacher's logits, or None) and returns a scalar tensor.

- ``bce``: pointwise binary cross-entropy (label > 0 is relevant).
- ``ranknet``: pairwise logistic loss over pairs with different labels.
- ``listnet``: cross-entropy between softmax(labels) and softmax(scores).
- ``softmax_ce``: cross-entropy of the relevant candidates against the whole group (the
  "localized contrastive" loss): the target puts all mass on relevant candidates, in proportion
  to their grade, so one positive among hard negatives gets a one-hot target. ListNet's
  softmax(labels) target gives a single positive among 8 negatives only 25% of the mass.
- ``listmle``: Plackett-Luce likelihood of the label order.
- ``plistmle``: ListMLE with position weights (errors at the top cost more).
- ``lambdaloss``: pairwise logistic loss weighted by the pair's |delta nDCG|.
- ``margin_mse``: MSE between student and teacher margins (first candidate minus each other).
- ``mse``: MSE between student and teacher logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["LOSS_FUNCTIONS", "compute_loss"]

_NEG = -1e4


def _bce(scores: Any, labels: Any, mask: Any, teacher: Any) -> Any:
    import torch.nn.functional as F

    targets = (labels > 0).float()
    losses = F.binary_cross_entropy_with_logits(scores, targets, reduction="none")
    return (losses * mask).sum() / mask.sum().clamp(min=1)


def _pair_terms(scores: Any, labels: Any, mask: Any) -> tuple[Any, Any]:
    """Score differences s_i - s_j and a mask of valid pairs with label_i > label_j."""
    diff = scores.unsqueeze(2) - scores.unsqueeze(1)
    better = (labels.unsqueeze(2) > labels.unsqueeze(1)) & mask.unsqueeze(2).bool() & mask.unsqueeze(1).bool()
    return diff, better.float()


def _ranknet(scores: Any, labels: Any, mask: Any, teacher: Any) -> Any:
    import torch.nn.functional as F

    diff, pairs = _pair_terms(scores, labels, mask)
    return (F.softplus(-diff) * pairs).sum() / pairs.sum().clamp(min=1)


def _listnet(scores: Any, labels: Any, mask: Any, teacher: Any) -> Any:
    import torch

    valid = mask.bool()
    target = torch.softmax(labels.float().masked_fill(~valid, _NEG), dim=1)
    log_probs = torch.log_softmax(scores.masked_fill(~valid, _NEG), dim=1)
    return -(target * log_probs * mask).sum(dim=1).mean()


def _softmax_ce(scores: Any, labels: Any, mask: Any, teacher: Any) -> Any:
    import torch

    valid = mask.bool()
    gains = labels.float().clamp(min=0) * valid
    totals = gains.sum(dim=1, keepdim=True)
    has_positive = (totals > 0).squeeze(1)
    # Groups without a relevant candidate have no target distribution and add nothing.
    target = gains / totals.clamp(min=1e-12)
    log_probs = torch.log_softmax(scores.masked_fill(~valid, _NEG), dim=1)
    per_group = -(target * log_probs * mask).sum(dim=1)
    return (per_group * has_positive).sum() / has_positive.sum().clamp(min=1)


def _plackett_luce(scores: Any, labels: Any, mask: Any, weighted: bool) -> Any:
    import torch

    valid = mask.bool()
    # Sort by label (ties by a fixed tiny offset, so the order is deterministic); padding last.
    keys = labels.float().masked_fill(~valid, -1e9) - 1e-6 * torch.arange(labels.shape[1], device=labels.device)
    order = torch.argsort(keys, dim=1, descending=True)
    sorted_scores = torch.gather(scores, 1, order)
    sorted_valid = torch.gather(valid, 1, order)
    masked = sorted_scores.masked_fill(~sorted_valid, _NEG)
    # log sum_{k >= i} exp(s_k), computed from the end of the list.
    tail = torch.logcumsumexp(masked.flip(1), dim=1).flip(1)
    terms = (tail - masked) * sorted_valid
    if weighted:
        positions = torch.arange(scores.shape[1], device=scores.device, dtype=scores.dtype)
        lengths = sorted_valid.sum(dim=1, keepdim=True).to(scores.dtype)
        # PListMLE weights: 2^(n - i) - 1, normalised; the top of the list matters most.
        weights = (torch.pow(2.0, (lengths - positions).clamp(min=0)) - 1) * sorted_valid
        weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return (terms * weights).sum(dim=1).mean()
    return (terms.sum(dim=1) / sorted_valid.sum(dim=1).clamp(min=1)).mean()


def _listmle(scores: Any, labels: Any, mask: Any, teacher: Any) -> Any:
    return _plackett_luce(scores, labels, mask, weighted=False)


def _plistmle(scores: Any, labels: Any, mask: Any, teacher: Any) -> Any:
    return _plackett_luce(scores, labels, mask, weighted=True)


def _lambdaloss(scores: Any, labels: Any, mask: Any, teacher: Any) -> Any:
    import torch
    import torch.nn.functional as F

    valid = mask.bool()
    gains = torch.pow(2.0, labels.float()) - 1
    # Current rank of every candidate under the model's scores (detached: weights, not gradients).
    ranks = torch.argsort(torch.argsort(scores.detach().masked_fill(~valid, _NEG), dim=1, descending=True), dim=1)
    discounts = 1.0 / torch.log2(ranks.float() + 2.0)
    ideal = torch.sort(gains.masked_fill(~valid, 0), dim=1, descending=True).values
    idcg = (ideal / torch.log2(torch.arange(labels.shape[1], device=labels.device).float() + 2.0)).sum(dim=1, keepdim=True)
    delta = (gains.unsqueeze(2) - gains.unsqueeze(1)).abs() * (discounts.unsqueeze(2) - discounts.unsqueeze(1)).abs()
    delta = delta / idcg.unsqueeze(2).clamp(min=1e-12)
    diff, pairs = _pair_terms(scores, labels, mask)
    weighted = F.softplus(-diff) * delta * pairs
    return weighted.sum() / pairs.sum().clamp(min=1)


def _margin_mse(scores: Any, labels: Any, mask: Any, teacher: Any) -> Any:
    student_margin = scores[:, :1] - scores[:, 1:]
    teacher_margin = teacher[:, :1] - teacher[:, 1:]
    pair_mask = mask[:, 1:]
    return (((student_margin - teacher_margin) ** 2) * pair_mask).sum() / pair_mask.sum().clamp(min=1)


def _mse(scores: Any, labels: Any, mask: Any, teacher: Any) -> Any:
    return (((scores - teacher) ** 2) * mask).sum() / mask.sum().clamp(min=1)


LOSS_FUNCTIONS: dict[str, Callable[[Any, Any, Any, Any], Any]] = {
    "bce": _bce,
    "ranknet": _ranknet,
    "listnet": _listnet,
    "softmax_ce": _softmax_ce,
    "listmle": _listmle,
    "plistmle": _plistmle,
    "lambdaloss": _lambdaloss,
    "margin_mse": _margin_mse,
    "mse": _mse,
}


def compute_loss(name: str, scores: Any, labels: Any, mask: Any, teacher: Any = None) -> Any:
    """The named loss of a batch of groups (see the module docstring)."""
    if name not in LOSS_FUNCTIONS:
        from crossrank.errors import ConfigurationError

        raise ConfigurationError(f"unknown loss {name!r}; expected one of {sorted(LOSS_FUNCTIONS)}")
    if name in ("margin_mse", "mse") and teacher is None:
        from crossrank.errors import ConfigurationError

        raise ConfigurationError(f"loss {name!r} needs teacher scores")
    mask = mask.to(scores.dtype)
    return LOSS_FUNCTIONS[name](scores, labels.to(scores.dtype), mask, teacher)
