"""``crossrank bench calibration``: how many labelled queries a calibration needs, and how it transfers.

The labelled-queries curve: for each domain (Cranfield, SciFact test by default), each number of
labelled queries (5/10/25/50) and each seed, a calibration is fitted on that many queries drawn
at random and its expected calibration error (ECE, 15 bins) is measured on every other query of
the domain, over each query's 10 best-scored candidates (the pairs ``crossrank eval`` measures).
Reported: the median and interquartile range over seeds, for what ``crossrank calibrate`` fits
(calibrator kind chosen on held-out queries, each query's top 10) and for single kinds, against
the packaged calibration applied unchanged; then across domains (fitted on all queries of one,
applied to the other). Candidates and scores come from ``crossrank eval``'s cache
(:func:`crossrank.evaluation.runner.prepare`): pairs already scored cost nothing.

``crossrank bench calibration-transfer``: candidate packaged calibrations for the embedded
default, each judged by its worst ECE over domains it was not fitted on (leave one domain out),
with in-domain ECE beside it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.cli.common import parse_positive_ints

__all__ = ["register", "run_labels", "run_transfer"]

_BINS = 15
_TOP = 10
_PACKAGED_SCORER_FIELDS = ("activation_quantization", "backend", "long_documents", "max_length", "max_query_length",
                           "max_windows", "model", "window_overlap", "window_pooling")


def _domain_list(text: str) -> list[tuple[str, str]]:
    out = []
    for item in text.split(","):
        name, _, split = item.strip().partition(":")
        if not name:
            raise argparse.ArgumentTypeError(f"expected NAME:SPLIT items, e.g. cranfield:test; received {text!r}")
        out.append((name, split or "test"))
    return out


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    labels = subparsers.add_parser(
        "calibration",
        help="held-out calibration error after 5/10/25/50 labelled queries of a domain, and across domains",
    )
    labels.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder holding the BEIR datasets (default ../shared/data)")
    labels.add_argument("--domains", type=_domain_list, default=[("cranfield", "test"), ("scifact", "test")],
                        help="NAME:SPLIT list (default cranfield:test,scifact:test)")
    labels.add_argument("--sizes", type=parse_positive_ints, default=[5, 10, 25, 50], help="labelled queries to fit on (default 5,10,25,50)")
    labels.add_argument("--seeds", type=int, default=20, help="random draws per size (default 20)")
    labels.add_argument("--depth", type=int, default=30, help="BM25 candidates per query (default 30)")
    labels.add_argument("--max-length", type=int, default=256, help="tokens per pair (default 256)")
    labels.add_argument("--cache-dir", type=Path, default=None, help="crossrank eval's score cache (default: its default)")
    labels.add_argument("--figure", type=Path, default=Path("docs/figures/calibration-labels.png"))
    labels.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    labels.add_argument("--section", default="calibration-labels")
    labels.add_argument("--note", default=None, help="a paragraph appended to the section")
    labels.set_defaults(handler=run_labels)

    transfer = subparsers.add_parser(
        "calibration-transfer",
        help="candidate packaged calibrations judged by worst-case ECE on domains they were not fitted on",
    )
    transfer.add_argument("--data", type=Path, default=Path("../shared/data"))
    transfer.add_argument("--cache-dir", type=Path, default=None)
    transfer.add_argument("--depth", type=int, default=10, help="candidates per query (default 10)")
    transfer.add_argument("--sample", type=int, default=200, help="queries sampled from SciFact train and XQuAD-R (default 200)")
    transfer.add_argument("--write", type=Path, default=None, metavar="JSON",
                          help="write the winning calibration here when it beats the packaged one by the criterion")
    transfer.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    transfer.add_argument("--section", default="calibration-transfer")
    transfer.add_argument("--note", default=None, help="a paragraph appended to the section")
    transfer.set_defaults(handler=run_transfer)


# ---------------------------------------------------------------------------- shared helpers
def _reranker(max_length: int | None) -> Any:
    from crossrank import Reranker
    from crossrank.config import RerankerConfig

    # An explicit configuration: no CROSSRANK_* variable of this process changes what is measured.
    return Reranker.from_config(RerankerConfig(max_length=max_length))


def _ece(calibrator: Any, x: np.ndarray, y: np.ndarray) -> float:
    from crossrank.evaluation.metrics import expected_calibration_error

    return expected_calibration_error(np.clip(calibrator.transform(x), 0.0, 1.0), y, _BINS)


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    array = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if array.size == 0:
        return float("nan"), float("nan"), float("nan")
    low, mid, high = np.percentile(array, [25, 50, 75])
    return float(mid), float(low), float(high)


# ---------------------------------------------------------------------------- labelled-queries curve
CALIBRATE = "crossrank calibrate: platt (top 10)"


def _methods() -> dict[str, Callable[[Any, list[str], int], Any]]:
    from crossrank.calibration import fit_calibrator
    from crossrank.evaluation.fitting import fit_labelled

    def chosen(data: Any, queries: list[str], seed: int) -> Any:
        calibration, _ = fit_labelled(data.subset(queries), kinds=("platt", "isotonic"), holdout=0.3, seed=seed,
                                      abstention_rules=(), top=_TOP)
        return calibration.calibrator

    def single(kind: str, top: int | None) -> Callable[[Any, list[str], int], Any]:
        def fit(data: Any, queries: list[str], seed: int) -> Any:
            x, y = data.pairs(queries, top=top)
            return fit_calibrator(kind, x, y, **({"min_block": 10} if kind == "isotonic" else {}))
        return fit

    return {
        CALIBRATE: single("platt", _TOP),
        "isotonic (top 10)": single("isotonic", _TOP),
        "platt or isotonic, chosen on 30% held out (top 10)": chosen,
        "platt (all candidates)": single("platt", None),
    }


def run_labels(args: argparse.Namespace) -> int:
    from crossrank.benchmarks import write_section
    from crossrank.errors import InvalidInputError
    from crossrank.evaluation.runner import EvalSetup, labelled_queries, prepare

    if args.seeds < 1:
        raise InvalidInputError(f"--seeds must be >= 1; received {args.seeds}")
    reranker = _reranker(args.max_length)
    packaged = reranker.calibration.calibrator
    domains: dict[str, Any] = {}
    for name, split in args.domains:
        scored = prepare(args.data / name, EvalSetup(split=split, depth=args.depth), reranker, cache_dir=args.cache_dir,
                         progress=sys.stderr.isatty())
        domains[name] = labelled_queries(scored)
    methods = _methods()
    results: dict[tuple[str, int, str], list[float]] = {}
    baseline: dict[str, float] = {}
    skipped: dict[tuple[str, int, str], int] = {}
    positives: dict[tuple[str, int], list[int]] = {}
    for name, data in domains.items():
        queries = data.query_ids()
        x_all, y_all = data.pairs(top=_TOP)
        baseline[name] = _ece(packaged, x_all, y_all)
        for size in args.sizes:
            if size >= len(queries):
                continue
            for seed in range(args.seeds):
                chosen = random.Random(seed).sample(queries, size)
                rest = [q for q in queries if q not in set(chosen)]
                positives.setdefault((name, size), []).append(int(data.pairs(chosen, top=_TOP)[1].sum()))
                x, y = data.pairs(rest, top=_TOP)
                for method, fit in methods.items():
                    try:
                        calibrator = fit(data, chosen, seed)
                    except InvalidInputError:
                        # e.g. no relevant pair among the drawn queries: nothing can be fitted
                        skipped[(name, size, method)] = skipped.get((name, size, method), 0) + 1
                        continue
                    results.setdefault((name, size, method), []).append(_ece(calibrator, x, y))
    cross: list[tuple[str, str, float, float]] = []
    names = list(domains)
    for source in names:
        for target in names:
            if source == target:
                continue
            calibrator = methods[CALIBRATE](domains[source], domains[source].query_ids(), 0)
            x, y = domains[target].pairs(top=_TOP)
            in_domain = _quartiles(results.get((target, max(args.sizes), CALIBRATE), []))[0]
            cross.append((source, target, _ece(calibrator, x, y), in_domain))
    figure = _plot_labels(results, baseline, args.sizes, names, args.figure)
    body = _labels_body(args, domains, results, baseline, skipped, cross, figure, positives)
    if args.note:
        body += "\n\n" + args.note.strip()
    write_section(args.section, body, path=args.output)
    sys.stdout.write(body + "\n")
    return 0


def _labels_body(args: argparse.Namespace, domains: dict[str, Any], results: dict[tuple[str, int, str], list[float]],
                 baseline: dict[str, float], skipped: dict[tuple[str, int, str], int],
                 cross: list[tuple[str, str, float, float]], figure: Path, positives: dict[tuple[str, int], list[int]]) -> str:
    sizes = ", ".join(map(str, args.sizes))
    lines = [
        "## Calibration from a few labelled queries",
        "",
        f"For each domain, {args.seeds} random draws of {sizes} labelled queries; a calibration is fitted on each draw and "
        f"its ECE ({_BINS} bins) measured on all the other queries of the domain, over each query's {_TOP} best-scored "
        f"candidates. Candidates: stemmed BM25 top {args.depth}; scores: the embedded default at max_length "
        f"{args.max_length}. `{CALIBRATE}` is what `crossrank calibrate` fits by default from a BEIR folder: Platt "
        "scaling on each drawn query's 10 best-scored candidates. The other rows: isotonic on the same pairs, the better "
        "of the two by ECE on 30% of the drawn queries held out, and Platt on all 30 candidates. `packaged` is the "
        "shipped calibration applied unchanged.",
        "",
        f"![held-out ECE against labelled queries]({_relative(figure, args.output)})",
        "",
        "| domain | labelled queries (median relevant top-10 pairs) | method | median ECE | 25th-75th percentile | draws with ECE ≤ 0.05 |",
        "|---|---|---|---|---|---|",
    ]
    for name, data in domains.items():
        counts = data.counts(_TOP)
        lines.append(f"| {name} ({counts['queries']} queries, {counts['positives']} of {counts['pairs']} top-{_TOP} pairs relevant) "
                     f"| 0 | packaged | {baseline[name]:.4f} | | |")
        for size in args.sizes:
            for method in _methods():
                values = results.get((name, size, method))
                if not values:
                    continue
                mid, low, high = _quartiles(values)
                good = sum(v <= 0.05 for v in values)
                note = f" ({skipped[(name, size, method)]} draws had nothing to fit)" if (name, size, method) in skipped else ""
                relevant = statistics.median(positives[(name, size)])
                lines.append(f"| {name} | {size} ({relevant:g}) | {method} | {mid:.4f} | {low:.4f}-{high:.4f} | {good}/{len(values)}{note} |")
    lines += ["", f"Across domains (`{CALIBRATE}` fitted on every query of one domain, applied to all of the other):", "",
              "| fitted on | applied to | ECE | in-domain, median after the largest draw |", "|---|---|---|---|"]
    lines += [f"| {s} | {t} | {e:.4f} | {i:.4f} |" for s, t, e, i in cross]
    return "\n".join(lines)


def _relative(figure: Path, document: Path) -> str:
    try:
        return str(Path(figure).resolve().relative_to(Path(document).resolve().parent))
    except ValueError:
        return str(figure)


def _plot_labels(results: dict[tuple[str, int, str], list[float]], baseline: dict[str, float], sizes: Sequence[int],
                 names: Sequence[str], figure: Path) -> Path:
    from crossrank.evaluation.report import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4), sharey=True, squeeze=False)
    for axis, name in zip(axes[0], names):
        for index, method in enumerate(_methods()):
            points = [(s, *_quartiles(results[(name, s, method)])) for s in sizes if results.get((name, s, method))]
            if not points:
                continue
            xs = [p[0] for p in points]
            axis.plot(xs, [p[1] for p in points], marker="o", color=f"C{index}", label=method)
            axis.fill_between(xs, [p[2] for p in points], [p[3] for p in points], color=f"C{index}", alpha=0.15)
        axis.axhline(baseline[name], color="grey", linestyle="--", label="packaged, unchanged")
        axis.axhline(0.05, color="black", linestyle=":", label="target 0.05")
        axis.set_xscale("log")
        axis.minorticks_off()
        axis.set_xticks(list(sizes))
        axis.set_xticklabels([str(s) for s in sizes])
        axis.set_xlabel("labelled queries fitted on")
        axis.set_title(name)
    axes[0][0].set_ylabel(f"held-out ECE (top {_TOP}; median, quartiles)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    figure = Path(figure)
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    return figure


# ---------------------------------------------------------------------------- transfer of the packaged default
def _nomiracl(scored: Any) -> Any:
    """NoMIRACL's labelled pairs: every candidate of its no-answer questions is judged not relevant.

    Its answerable questions have at least one relevant candidate, but the data does not say which,
    so they carry no pair labels; their ECE is the mean probability given to those passages.
    """
    from crossrank.evaluation.fitting import LabelledQueries

    negatives = scored.dataset.qrels(f"{scored.setup.split}.non_relevant")
    queries = [q for q in scored.query_ids if q in negatives and scored.logits.get(q)]
    return LabelledQueries({q: dict(scored.logits[q]) for q in queries}, {q: {} for q in queries},
                           source=f"qrels/{scored.setup.split}.non_relevant.tsv (all 0)")


def _pool(parts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(part.pairs(top=_TOP) for part in parts))
    return np.concatenate(xs), np.concatenate(ys)


def _pav(blocks: list[list[float]]) -> list[list[float]]:
    """Pool adjacent violators over ``[value sum, weight, logit sum]`` blocks sorted by logit."""
    out: list[list[float]] = []
    for block in blocks:
        out.append(list(block))
        while len(out) > 1 and out[-2][0] / out[-2][1] > out[-1][0] / out[-1][1]:
            last = out.pop()
            out[-1] = [out[-1][0] + last[0], out[-1][1] + last[1], out[-1][2] + last[2]]
    return out


def _isotonic_with_prior(x: np.ndarray, y: np.ndarray, strength: float = 20.0) -> Any:
    """Isotonic regression whose blocks are shrunk toward a Platt fit by ``strength`` pseudo-pairs each.

    Sparse blocks (few pairs, e.g. at the ends) follow the smooth Platt curve; dense ones keep their
    own rate. Shrinking can break monotonicity, so the shrunk blocks are pooled again.
    """
    from crossrank.calibration import IsotonicCalibrator, fit_platt

    prior = fit_platt(x, y)
    order = np.argsort(x, kind="stable")
    distinct: list[list[float]] = []
    for value, label in zip(x[order], y[order]):
        if distinct and value == distinct[-1][2] / distinct[-1][1]:
            distinct[-1] = [distinct[-1][0] + label, distinct[-1][1] + 1, distinct[-1][2] + value]
        else:
            distinct.append([float(label), 1.0, float(value)])
    shrunk = []
    for total, count, logits in _pav(distinct):
        knot = logits / count
        rate = (total + strength * float(prior.transform(np.array([knot]))[0])) / (count + strength)
        shrunk.append([rate * count, count, logits])
    blocks = _pav(shrunk)
    return IsotonicCalibrator(knots=[b[2] / b[1] for b in blocks], values=[min(1.0, max(0.0, b[0] / b[1])) for b in blocks])


class _QueryFeatureCalibrator:
    """A diagnostic only: logistic regression on a pair's logit and its distance to the query's best logit.

    It reads a query's whole candidate list, so it cannot be a calibrator of the engine (whose
    probabilities must not depend on the other documents of the call).
    """

    def __init__(self, parts: Sequence[Any]) -> None:
        features, labels = zip(*(self._features(part) for part in parts))
        x = np.vstack(features)
        y = np.concatenate(labels)
        design = np.hstack([x, np.ones((len(x), 1))])
        w = np.zeros(design.shape[1])
        for _ in range(100):
            p = 1 / (1 + np.exp(-np.clip(design @ w, -500, 500)))
            grad = design.T @ (p - y) + 1e-6 * w
            hess = design.T @ (design * (p * (1 - p))[:, None]) + 1e-6 * np.eye(len(w))
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.max(np.abs(step)) < 1e-10:
                break
        self.w = w

    @staticmethod
    def _features(part: Any) -> tuple[np.ndarray, np.ndarray]:
        rows, labels = [], []
        for q in part.query_ids():
            x, y = part.pairs([q], top=_TOP)
            rows.append(np.column_stack([x, x - x.max()]))
            labels.append(y)
        return np.vstack(rows), np.concatenate(labels)

    def ece(self, part: Any) -> float:
        from crossrank.evaluation.metrics import expected_calibration_error

        x, y = self._features(part)
        p = 1 / (1 + np.exp(-np.clip(np.hstack([x, np.ones((len(x), 1))]) @ self.w, -500, 500)))
        return expected_calibration_error(p, y, _BINS)


def _candidates() -> dict[str, Callable[[Sequence[Any]], Any]]:
    from crossrank.calibration import fit_calibrator

    def kind(name: str) -> Callable[[Sequence[Any]], Any]:
        def fit(parts: Sequence[Any]) -> Any:
            x, y = _pool(parts)
            return fit_calibrator(name, x, y, **({"min_block": 10} if name == "isotonic" else {}))
        return fit

    return {
        "platt, pooled": kind("platt"),
        "temperature, pooled": kind("temperature"),
        "isotonic, pooled": kind("isotonic"),
        "isotonic with a platt prior, pooled": lambda parts: _isotonic_with_prior(*_pool(parts)),
        "per-query features (diagnostic)": lambda parts: _QueryFeatureCalibrator(parts),
    }


def _score(calibrator: Any, part: Any) -> float:
    if isinstance(calibrator, _QueryFeatureCalibrator):
        return calibrator.ece(part)
    x, y = part.pairs(top=_TOP)
    return _ece(calibrator, x, y)


def _halves(data: Any, seed: int = 0) -> tuple[Any, Any]:
    queries = data.query_ids()
    first = set(random.Random(seed).sample(queries, len(queries) // 2))
    return data.subset([q for q in queries if q in first]), data.subset([q for q in queries if q not in first])


def run_transfer(args: argparse.Namespace) -> int:
    from crossrank.benchmarks import write_section
    from crossrank.evaluation.runner import EvalSetup, labelled_queries, prepare

    reranker = _reranker(None)  # the default settings, which the packaged calibration serves
    packaged = reranker.calibration
    data = args.data

    def load(name: str, setup: EvalSetup) -> Any:
        return prepare(data / name, setup, reranker, cache_dir=args.cache_dir, progress=sys.stderr.isatty())

    scifact_train = labelled_queries(load("scifact", EvalSetup(split="train", depth=args.depth, sample=args.sample, seed=1)))
    scifact_test = labelled_queries(load("scifact", EvalSetup(split="test", depth=args.depth)))
    cranfield = labelled_queries(load("cranfield", EvalSetup(split="test", depth=args.depth)))
    xquad = labelled_queries(load("xquad-r-de", EvalSetup(split="test", depth=args.depth, sample=args.sample, seed=1, bm25_stemmer="none")))
    nomiracl_scored = load("nomiracl-en", EvalSetup(split="test", candidates="fixed", depth=args.depth))
    nomiracl = _nomiracl(nomiracl_scored)
    # (fitting data, evaluation data) per domain; NoMIRACL has no relevant-pair labels to fit on.
    domains: dict[str, tuple[Any | None, Any]] = {
        "scifact": (scifact_train, scifact_test),
        "cranfield": (cranfield, cranfield),
        "xquad-r-de": (xquad, xquad),
        "nomiracl-en": (None, nomiracl),
    }
    fittable = [name for name, (fit, _) in domains.items() if fit is not None]
    rows: dict[str, dict[str, Any]] = {}
    rows["packaged (current)"] = {
        "out": {name: _score(packaged.calibrator, evaluation) for name, (_, evaluation) in domains.items() if name != "scifact"},
        "in": {"scifact": _score(packaged.calibrator, scifact_test)},
    }
    for method, fit in _candidates().items():
        out = {}
        for held, (_, evaluation) in domains.items():
            out[held] = _score(fit([domains[name][0] for name in fittable if name != held]), evaluation)
        inside = {}
        for name in fittable:
            training, evaluation = domains[name]
            if training is evaluation:
                a, b = _halves(training)
                inside[name] = (_score(fit([a]), b) + _score(fit([b]), a)) / 2
            else:
                inside[name] = _score(fit([training]), evaluation)
        rows[method] = {"out": out, "in": inside}
    for row in rows.values():
        row["worst_out"] = max(row["out"].values())
        labelled = [v for n, v in row["out"].items() if n != "nomiracl-en"]
        row["worst_labelled"] = max(labelled)
    shippable = [m for m in rows if m not in ("packaged (current)", "per-query features (diagnostic)")]
    best = min(shippable, key=lambda m: rows[m]["worst_out"])
    replace = rows[best]["worst_out"] < rows["packaged (current)"]["worst_out"]
    shipped_on = ["scifact", "xquad-r-de"]  # Cranfield and NoMIRACL stay unseen, for the transfer figures
    note = ""
    if args.write is not None:
        from crossrank.calibration import save_calibration

        if replace:
            calibration = _packaged_candidate(best, [domains[name][0] for name in shipped_on], packaged, reranker, args)
            new = calibration.calibrator
            note = (f"Written to `{args.write}`: `{best}` fitted on {' + '.join(shipped_on)} (fitting data as above); "
                    f"with it, ECE on Cranfield (not fitted on) {_score(new, cranfield):.4f}, NoMIRACL-en no-answer passages "
                    f"{_score(new, nomiracl):.4f}, SciFact test {_score(new, scifact_test):.4f}.")
        else:
            calibration = _with_reference(packaged, scifact_train, args)
            note = (f"Written to `{args.write}`: the packaged calibration unchanged, with the distribution of its domain's "
                    f"top scores added for the drift warning ({len(scifact_train.query_ids())} SciFact train claims, "
                    f"each one's best raw score among its BM25 top {args.depth}).")
        save_calibration(calibration, args.write)
    feedback = _feedback_rule(scifact_train, scifact_test, reranker, packaged)
    feedback += "\n\n" + _drift_check(scifact_train, {"scifact (test)": scifact_test, "cranfield": cranfield,
                                                          "xquad-r-de": xquad, "nomiracl-en": nomiracl}, rows)
    body = _transfer_body(args, domains, rows, best, replace, note) + "\n\n" + feedback
    if args.note:
        body += "\n\n" + args.note.strip()
    write_section(args.section, body, path=args.output)
    sys.stdout.write(body + "\n")
    return 0


def _packaged_candidate(method: str, parts: Sequence[Any], packaged: Any, reranker: Any, args: argparse.Namespace) -> Any:
    """The calibration to ship: ``method`` fitted on ``parts``, with the current abstention decisions kept.

    The current rule abstains when the best probability is below its cut; the same raw-score cut is
    kept and re-expressed as a probability of the new calibrator, so every query is answered or
    abstained on exactly as before (re-fitting the rule needs no-answer queries of more domains).
    """
    from datetime import datetime, timezone

    from crossrank.calibration import Calibration
    from crossrank.drift import REFERENCE_KEY
    from crossrank.evaluation.cache import scorer_settings
    from crossrank.evaluation.fitting import LabelledQueries, drift_reference

    calibrator = _candidates()[method](parts)
    raw_cut = _raw_cut(packaged)
    cut = float(np.clip(calibrator.transform(np.array([raw_cut]))[0], 0.0, 1.0))
    pooled = LabelledQueries({f"{i}:{q}": part.logits[q] for i, part in enumerate(parts) for q in part.query_ids()}, {})
    provenance = {
        "fitted_on": (
            f"{method}: each query's BM25 top {args.depth} (bm25s, k1=0.9, b=0.4) from SciFact split 'train' only (a seeded "
            f"sample, Python random.Random(1), of {args.sample} claims; labels qrels/train-evidence.tsv) and XQuAD-R (de) "
            f"(a seeded sample, random.Random(1), of {args.sample} questions, unstemmed BM25; labels qrels/test.tsv), pooled; "
            "scored at the default settings. Chosen by the worst expected calibration error over domains a candidate "
            "was not fitted on (leave one domain out among SciFact, Cranfield, XQuAD-R (de) and NoMIRACL-en; "
            "crossrank bench calibration-transfer, BENCHMARKS.md section calibration-transfer). The abstention rule keeps "
            f"the previous calibration's raw-score cut ({raw_cut:.4f}, fitted on SciFact train claims), re-expressed as a "
            "probability. Nothing from SciFact test, Cranfield or NoMIRACL was fitted on."
        ),
        "method": method,
        "queries": sum(len(part.query_ids()) for part in parts),
        # The settings users score with. Not the CPU's int8 kernels: recorded, they would mark the
        # probabilities approximate on every other CPU, and they move scores far less than domains do.
        "scorer": {k: v for k, v in scorer_settings(reranker).items() if k in _PACKAGED_SCORER_FIELDS},
        "fitting_machine_int8_kernels": scorer_settings(reranker).get("int8_kernels"),
        "abstention_raw_cut": raw_cut,
        "previous": {"calibrator": packaged.calibrator.to_dict(), "fitted_on": packaged.provenance.get("fitted_on")},
        "fitted_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "crossrank bench calibration-transfer " + _arguments(),
    }
    reference = drift_reference(pooled)
    if reference is not None:
        provenance[REFERENCE_KEY] = reference
    return Calibration(calibrator=calibrator, threshold=cut, abstention={"kind": "max-score", "min_top_score": cut},
                       provenance=provenance)


def _with_reference(packaged: Any, claims: Any, args: argparse.Namespace) -> Any:
    """The packaged calibration with a drift reference: its domain's per-query top raw scores.

    Its own fitting lists held the claims' cited abstracts besides their BM25 candidates, which
    would raise the top scores above what a retriever hands over; the reference is therefore
    taken from SciFact train claims' BM25 lists at the default settings.
    """
    from crossrank.calibration import Calibration
    from crossrank.drift import REFERENCE_KEY
    from crossrank.evaluation.fitting import drift_reference

    provenance = dict(packaged.provenance)
    provenance[REFERENCE_KEY] = drift_reference(claims)
    provenance["top_score_distribution_from"] = (
        f"each of {len(claims.query_ids())} SciFact train claims' best raw score among its BM25 top {args.depth} (a seeded "
        "sample, Python random.Random(1), of the split; bm25s k1=0.9, b=0.4, Snowball English), scored at the default "
        "settings; recorded by crossrank bench calibration-transfer " + _arguments()
    )
    return Calibration(calibrator=packaged.calibrator, threshold=packaged.threshold, abstention=packaged.abstention,
                       provenance=provenance)


def _arguments() -> str:
    """This command's arguments as typed, less the free-text ``--note``."""
    argv, kept = sys.argv[3:], []
    skip = False
    for item in argv:
        if skip:
            skip = False
        elif item == "--note":
            skip = True
        elif not item.startswith("--note="):
            kept.append(item)
    return " ".join(kept)


def _raw_cut(calibration: Any) -> float:
    """The raw score at which the calibration's max-score rule cuts (found by bisection on its monotone map)."""
    rule = calibration.abstention or {}
    target = float(rule.get("min_top_score", calibration.threshold or 0.5))
    low, high = -50.0, 50.0
    for _ in range(200):
        middle = (low + high) / 2
        if calibration.calibrator.transform(np.array([middle]))[0] >= target:
            high = middle
        else:
            low = middle
    return high


def _transfer_body(args: argparse.Namespace, domains: dict[str, tuple[Any | None, Any]], rows: dict[str, dict[str, Any]],
                   best: str, replace: bool, note: str) -> str:
    names = list(domains)
    lines = [
        "## Packaged calibration: in-domain and out-of-domain ECE",
        "",
        f"Embedded default at its default settings; each query's first {args.depth} candidates (BM25, NoMIRACL's fixed "
        f"lists); ECE over them ({_BINS} bins). Out of domain: fitted on the other domains' fitting data (leave one domain "
        "out). In domain: SciFact fitted on its train claims and measured on test; Cranfield and XQuAD-R (de) by two-fold "
        "cross-validation over their queries. NoMIRACL-en labels only the passages of its no-answer questions (all not "
        "relevant), so its figure is the mean probability given to them, and it is never fitted on. The packaged "
        "calibration was fitted on SciFact train, so its SciFact figure is in-domain.",
        "",
        "| candidate | " + " | ".join(f"{n} out" for n in names) + " | worst out | worst out, labelled pairs only | "
        + " | ".join(f"{n} in" for n in names[:3]) + " |",
        "|---|" + "---|" * (len(names) + 2 + 3),
    ]
    for method, row in rows.items():
        out = " | ".join(f"{row['out'][n]:.4f}" if n in row["out"] else "" for n in names)
        inside = " | ".join(f"{row['in'][n]:.4f}" if n in row["in"] else "" for n in names[:3])
        lines.append(f"| {method} | {out} | **{row['worst_out']:.4f}** | {row['worst_labelled']:.4f} | {inside} |")
    packaged_row = rows["packaged (current)"]
    verdict = (f"`{best}` has the lowest worst-case out-of-domain ECE of the shippable candidates ({rows[best]['worst_out']:.4f} "
               f"against {packaged_row['worst_out']:.4f} for the packaged calibration; without NoMIRACL "
               f"{rows[best]['worst_labelled']:.4f} against {packaged_row['worst_labelled']:.4f}): "
               + ("it replaces it." if replace else "not lower than the packaged one's, so the packaged calibration stays."))
    lines += ["", verdict]
    if note:
        lines += ["", note]
    return "\n".join(lines)


def _feedback_rule(train: Any, test: Any, reranker: Any, packaged: Any) -> str:
    """An abstention rule fitted from a feedback log, measured on SciFact test.

    The log is simulated from SciFact train claims: each claim's candidates are shown in score
    order, and the user uses exactly the shown abstracts with annotated evidence (a claim without
    evidence gets no use). It goes through a real :class:`~crossrank.feedback.FeedbackLog`, the
    labels :func:`crossrank.evaluation.labelled.from_feedback` reads and the fit ``crossrank
    calibrate --feedback`` makes; the rule is then applied to SciFact test, whose claims without
    evidence are the no-answer queries.
    """
    import tempfile

    from crossrank.evaluation.fitting import fit_labelled
    from crossrank.evaluation.labelled import from_feedback
    from crossrank.evaluation.metrics import false_evidence_rate, hit_rate
    from crossrank.evaluation.runner import decide
    from crossrank.feedback import FeedbackLog
    from crossrank.results import ScoredDocument

    model_id = reranker.model_id
    with tempfile.TemporaryDirectory(prefix="crossrank-feedback-") as folder:
        log = FeedbackLog(Path(folder) / "feedback.jsonl")
        for q in train.query_ids():
            docs = sorted(train.logits[q], key=lambda d: -train.logits[q][d])
            shown = [ScoredDocument(index=i, text=d, score=0.0, raw_score=train.logits[q][d], metadata={"id": d}, rank=i + 1)
                     for i, d in enumerate(docs)]
            impression = log.record_shown(f"claim {q}", shown, query_id=q, model=model_id)
            for d in docs:
                if train.labels.get(q, {}).get(d, 0) > 0:
                    log.record_used(impression, d, kind="citation")
        data = from_feedback(log.impressions(), model_id=model_id)
    calibration, report = fit_labelled(data, kinds=("platt", "isotonic"), holdout=0.3, seed=0, max_false_evidence=0.3)
    answerable = {q: bool(test.answerable.get(q)) for q in test.query_ids()} if test.answerable else {}
    lines = ["Abstention fitted from feedback: a feedback log simulated from the SciFact train claims above (each claim's "
             "candidates shown in score order; the abstracts with annotated evidence used, none for claims without evidence), "
             f"read by `crossrank calibrate --feedback`'s labels and fit: {data.counts()['queries']} impressions, "
             f"{data.counts()['no_answer_queries']} without a use."]
    if calibration.abstention is None or not answerable:
        lines.append(f"No rule was fitted: {report.get('abstention_note', 'no no-answer queries')}.")
        return " ".join(lines)
    rows = []
    for name, rule in (("fitted from the feedback log", calibration), ("packaged", packaged)):
        answered = {q: bool(decide(rule, "calibrated", test.logits[q])) for q in answerable}
        rows.append(f"| {name} | {false_evidence_rate(answered, answerable):.4f} | {hit_rate(answered, answerable):.4f} |")
    lines += ["", f"Rule chosen: {report['chosen_abstention']} (constraint false-evidence rate ≤ 0.3 on held-out impressions). "
              f"On SciFact test ({sum(answerable.values())} claims with evidence, {sum(not v for v in answerable.values())} "
              "without; targets: false-evidence rate ≤ 0.30 at hit rate ≥ 0.85):", "",
              "| rule | false-evidence rate | hit rate |", "|---|---|---|", *rows]
    return "\n".join(lines)


def _drift_check(reference_queries: Any, domains: dict[str, Any], rows: dict[str, dict[str, Any]]) -> str:
    """The drift statistic each domain's queries reach against the reference recorded for the packaged calibration."""
    from crossrank.drift import DEFAULT_BOUND, DriftMonitor
    from crossrank.evaluation.fitting import drift_reference

    reference = drift_reference(reference_queries)
    cells = []
    for name, data in domains.items():
        tops = [max(data.logits[q].values()) for q in data.query_ids()]
        monitor = DriftMonitor(reference, window=min(300, len(tops)), warn_every=10**9)
        psi = None
        for top in tops:
            psi = monitor.observe(top)
        key = name.split(" ")[0]
        ece = rows["packaged (current)"]["out"].get(key, rows["packaged (current)"]["in"].get(key))
        cells.append(f"| {name} | {len(tops)} | {psi:.3f} | {'yes' if psi is not None and psi > DEFAULT_BOUND else 'no'} | {ece:.4f} |")
    return "\n".join([
        f"Drift check: each domain's queries (their top raw scores, in order, over a window of up to 300) against the "
        f"reference recorded with the packaged calibration ({len(reference_queries.query_ids())} SciFact train claims); "
        f"the warning fires above a population stability index of {DEFAULT_BOUND}.", "",
        "| queries | count | PSI at the end | warning | packaged ECE there |", "|---|---|---|---|---|", *cells])
