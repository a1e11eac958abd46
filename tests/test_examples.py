"""Every script in examples/ runs offline to completion and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))

# Lines an example must print; examples not listed must still exit 0 and print something.
EXPECTED_OUTPUT = {
    "llama_index_example.py": [
        "Q: How high is Mount Everest?",
        "1. [everest]",
        "answer 'not found'",
    ],
    "langchain_example.py": [
        "Q: Which mountain is the second highest?",
        "1. [k2]",
        "answer 'not found'",
    ],
    "haystack_example.py": ["loaded back", "1. [trekking]", "answer 'not found'"],
    "first_stage_fusion.py": [
        "reranker alone",
        "fused with BM25 (first_stage_weight=0.3)",
        "1. p=",
        "Supplementing vitamin D reduced",
    ],
}


def test_examples_exist() -> None:
    names = {path.name for path in EXAMPLES}
    assert set(EXPECTED_OUTPUT) <= names


@pytest.mark.slow
@pytest.mark.embedded
@pytest.mark.parametrize("script", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs_offline(script: Path, embedded_model_dir: Path) -> None:
    # The fixture puts the default model in the cache; from then on nothing may be downloaded.
    env = {**os.environ, "CROSSRANK_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        cwd=EXAMPLES_DIR.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr
    assert completed.stdout.strip(), f"{script.name} printed nothing"
    for expected in EXPECTED_OUTPUT.get(script.name, []):
        assert expected in completed.stdout, (
            f"{script.name} did not print {expected!r}:\n{completed.stdout}"
        )
