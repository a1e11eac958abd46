"""Evaluation reports: JSON, a Markdown summary, a reliability diagram and a metric-vs-threshold plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.errors import missing_dependency
from crossrank.evaluation.metrics import reliability_bins

__all__ = ["markdown_summary", "plot_reliability", "plot_threshold_curve", "write_report"]


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    return value


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise missing_dependency("matplotlib", "eval", "report plots") from None
    return plt


def plot_reliability(probabilities: np.ndarray, labels: np.ndarray, path: Path, *, bins: int = 15, title: str = "") -> Path:
    """Reliability diagram: positive rate per probability bin against the diagonal, with counts."""
    plt = _pyplot()
    table = reliability_bins(probabilities, labels, bins)
    used = table.counts > 0
    centres = (table.edges[:-1] + table.edges[1:]) / 2
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.bar(centres[used], table.accuracy[used], width=1 / bins, alpha=0.6, edgecolor="black", label="positive rate")
    top.plot(table.confidence[used], table.accuracy[used], marker="o", color="C3", label="positive rate at mean probability")
    top.set_ylabel("fraction relevant")
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title or "Reliability diagram")
    bottom.bar(centres, table.counts, width=1 / bins, color="C0")
    bottom.set_yscale("log")
    bottom.set_xlabel("calibrated probability")
    bottom.set_ylabel("pairs")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_threshold_curve(curve: dict[str, list[float | None]], path: Path, *, marker: float | None = None, title: str = "") -> Path:
    """False-evidence rate and hit rate as the top-score threshold varies."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    t = np.array(curve["threshold"], dtype=float)
    for key, label in (("hit_rate", "hit rate (answerable queries)"), ("false_evidence_rate", "false-evidence rate (no-answer queries)")):
        values = np.array([np.nan if v is None else v for v in curve[key]], dtype=float)
        axis.plot(t, values, label=label)
    if marker is not None:
        axis.axvline(marker, color="grey", linestyle=":", label=f"chosen cut {marker:.3f}")
    axis.set_xlabel("threshold on the best calibrated score")
    axis.set_ylabel("rate")
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=8)
    axis.set_title(title or "Metric vs threshold")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def markdown_summary(report: dict[str, Any]) -> str:
    """A short Markdown account of a report (used for the ``.md`` file and ``BENCHMARKS.md``)."""
    setup, scorer = report["setup"], report["scorer"]
    reranked = f" (top {setup['rerank_depth']} reranked, the rest in first-stage order)" if setup.get("rerank_depth") else ""
    weight = setup.get("first_stage_weight")
    applied = report.get("first_stage_weight_applied", weight if isinstance(weight, (int, float)) else 0.0)
    if applied:
        named = f"{applied:g}" if weight != "auto" else f"'auto', {applied:g}"
        reranked += (
            f"; final order fuses the reranker with the first stage, first-stage weight {named} "
            "(per-query z-scores; probabilities and abstention from the reranker alone)"
        )
    elif weight == "auto":
        reranked += "; final order by the reranker alone (first-stage weight 'auto': the candidates carry no retriever scores)"
    source = f"`{setup['candidates']}`"
    if setup["candidates"] in ("bm25", "rrf") and "bm25_stemmer" in setup:
        source += f" (BM25 stemmer {setup['bm25_stemmer']})"
    lines = [
        (
            f"Dataset `{Path(report['dataset']).name}` split `{report['split']}`: {report['queries']} queries, "
            f"candidates {source} depth {setup['depth']}{reranked}; model `{scorer['model']}` "
            f"(backend {scorer['backend']}, max_length {scorer['max_length']}, {scorer['long_documents']})."
        ),
        "",
    ]
    if not report.get("complete", True):
        lines += [
            (
                f"**Partial run**: {report['pairs_scored']} of {report['pairs_expected']} candidate pairs were scored; "
                "unscored candidates keep their first-stage order below the scored ones."
            ),
            "",
        ]
    metrics = report.get("metrics", {})
    first = report.get("first_stage_metrics", {})
    ranking = [k for k in metrics if k not in ("false_evidence_rate", "hit_rate", "ece")]
    orders = report.get("orders") or {}
    fused = orders.get("fused")
    if ranking and fused:
        alone = orders["reranker"]
        lines += [f"| metric | first stage | reranker alone | fused (first-stage weight {fused['first_stage_weight']:g}) |",
                  "|---|---|---|---|"]
        lines += [f"| {k} | {_fmt(first.get(k))} | {_fmt(alone.get(k))} | {_fmt(fused['metrics'].get(k))} |" for k in ranking]
        lines.append("")
        sig = orders.get("significance")
        if sig:
            lines.append(
                f"{sig['metric']} fused vs reranker alone: {sig['bootstrap']['mean_a']:.4f} -> {sig['bootstrap']['mean_b']:.4f}, "
                f"difference {sig['bootstrap']['difference']:+.4f}, paired bootstrap p = {sig['bootstrap']['p_value']:.4f}, "
                f"randomization p = {sig['randomization']['p_value']:.4f} ({sig['bootstrap']['queries']} queries)."
            )
    elif ranking:
        lines += ["| metric | first stage | reranked |", "|---|---|---|"]
        lines += [f"| {k} | {_fmt(first.get(k))} | {_fmt(metrics[k])} |" for k in ranking]
    if ranking:
        lines.append("")
        sig = report.get("significance")
        if sig:
            final = "final order" if fused else "reranked"
            lines.append(
                f"{sig['metric']} {final} vs {sig['baseline']}: difference {sig['bootstrap']['difference']:+.4f}, "
                f"paired bootstrap p = {sig['bootstrap']['p_value']:.4f}, randomization p = {sig['randomization']['p_value']:.4f} "
                f"({sig['bootstrap']['queries']} queries)."
            )
            lines.append("")
        comparison = report.get("comparison")
        if comparison:
            lines.append(
                f"{comparison['metric']} vs {comparison['baseline']}: {comparison['bootstrap']['mean_a']:.4f} -> "
                f"{comparison['bootstrap']['mean_b']:.4f}, difference {comparison['bootstrap']['difference']:+.4f}, "
                f"paired bootstrap p = {comparison['bootstrap']['p_value']:.4f}, randomization p = "
                f"{comparison['randomization']['p_value']:.4f} ({comparison['bootstrap']['queries']} queries)."
            )
            lines.append("")
    abstention = report.get("abstention")
    if abstention:
        lines.append(f"Abstention: {abstention['answerable']} answerable and {abstention['unanswerable']} no-answer queries.")
        if "false_evidence_rate" in abstention:
            lines.append(
                f"With threshold `{abstention['threshold']}` (probability cut {_fmt(abstention.get('probability_cut'))}): "
                f"false-evidence rate **{_fmt(abstention['false_evidence_rate'])}**, hit rate **{_fmt(abstention['hit_rate'])}**."
            )
        oracle = abstention.get("oracle_on_this_split")
        if oracle:
            # Reports written before the reference cut read raw scores cut the calibrated ones.
            raw = oracle.get("score") == "raw"
            cut = (
                f"raw-score cut {_fmt(oracle['threshold'])}, probability {_fmt(oracle['probability_at_threshold'])} "
                f"under this calibration;" if raw else f"cut {_fmt(oracle['threshold'])},"
            )
            lines.append(
                f"For reference only (selected on this split, not a result): the best "
                f"{'cut on the top raw score' if raw else 'top-score cut'} here with "
                f"false-evidence rate ≤ {oracle['max_false_evidence']} gives hit rate {_fmt(oracle['hit_rate'])} "
                f"({cut} false-evidence rate {_fmt(oracle['false_evidence_rate'])})."
            )
        if abstention.get("top_score_auc") is not None:
            lines.append(
                f"Separation with no cut: ROC AUC of each query's top raw score, answerable vs no-answer, "
                f"{_fmt(abstention['top_score_auc'])}."
            )
        lines.append("")
    calibration = report.get("calibration", {})
    if calibration.get("ece") is not None:
        lines.append(
            f"Calibration (`{calibration['calibrator']['kind']}`): ECE **{_fmt(calibration['ece'])}** over {calibration['pairs']} pairs "
            f"({calibration['ece_pairs']}, labels `{calibration['labels']}`, {calibration['bins']} bins); "
            f"mean probability {_fmt(calibration['mean_probability'])} vs positive rate {_fmt(calibration['positive_rate'])}; "
            f"ECE over all scored candidates {_fmt(calibration['ece_all_candidates'])}."
        )
    provenance = calibration.get("provenance") or {}
    if provenance.get("fitted_on"):
        lines.append(f"Calibration fitted on: {provenance['fitted_on'].rstrip('.')}.")
    if report.get("note"):
        lines += ["", str(report["note"])]
    return "\n".join(lines).rstrip() + "\n"


def write_report(report: dict[str, Any], out: Path, *, plots: bool = True) -> dict[str, Path]:
    """Write ``out`` (JSON), ``out`` with ``.md`` and, with ``plots``, two PNGs beside it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    stem = out.with_suffix("")
    if plots:
        reliability = report.get("_reliability")
        if reliability is not None and len(reliability[0]):
            written["reliability_png"] = plot_reliability(
                reliability[0], reliability[1], Path(f"{stem}.reliability.png"), bins=report["calibration"].get("bins", 15),
                title=f"Reliability: {Path(report['dataset']).name} {report['split']}",
            )
        abstention = report.get("abstention")
        if abstention and abstention.get("curve"):
            written["threshold_png"] = plot_threshold_curve(
                abstention["curve"], Path(f"{stem}.threshold.png"), marker=abstention.get("probability_cut"),
                title=f"Abstention vs threshold: {Path(report['dataset']).name} {report['split']}",
            )
    report = {**report, "files": {k: str(v) for k, v in written.items()}}
    summary = markdown_summary(report)
    md = Path(f"{stem}.md")
    md.write_text(summary, encoding="utf-8")
    written["markdown"] = md
    report["files"]["markdown"] = str(md)
    out.write_text(json.dumps(_json_ready(report), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    written["json"] = out
    return written
