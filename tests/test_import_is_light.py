"""``import crossrank`` must not pull in torch or any framework."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "llama_index", "langchain", "langchain_core", "haystack", "sentence_transformers", "crossrank.training", "crossrank.adapters")


def _modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return set(output.split())


def test_import_crossrank_is_torch_and_framework_free() -> None:
    loaded = _modules_after("import crossrank")
    assert not {m for m in loaded if m.split(".")[0] in {h.split(".")[0] for h in HEAVY if "." not in h}}
    assert "crossrank.training" not in loaded and "crossrank.adapters" not in loaded


def test_cli_parser_is_torch_free() -> None:
    loaded = _modules_after("from crossrank.cli import build_parser; build_parser()")
    assert "torch" not in loaded and "transformers" not in loaded


def test_importing_subpackages_stays_light() -> None:
    loaded = _modules_after("import crossrank.training, crossrank.adapters")
    assert "torch" not in loaded
