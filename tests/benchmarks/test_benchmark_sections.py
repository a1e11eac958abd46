"""BENCHMARKS.md sections: each command rewrites only its own, and records a command that can be pasted."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from crossrank.benchmarks import command_line, write_section


def test_the_recorded_command_survives_a_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["/venv/bin/crossrank", "quantization-scan", "run.yaml", "--products", "/bert/encoder/layer.2/*",
            "--note", "the teacher's lead; one `float` layer"]
    monkeypatch.setattr(sys, "argv", argv)
    recorded = command_line()
    assert recorded.startswith("crossrank quantization-scan run.yaml --products '/bert/encoder/layer.2/*'")
    assert shlex.split(recorded) == ["crossrank", *argv[1:]]


def test_a_section_is_replaced_in_place_and_others_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    write_section("first", "one", path=path, command="cmd-1")
    write_section("second", "two", path=path, command="cmd-2")
    write_section("first", "uno", path=path, command="cmd-3")
    text = path.read_text()
    assert text.index("<!-- section:first -->") < text.index("<!-- section:second -->")
    assert "uno" in text and "\none\n" not in text and "two" in text
    assert "- Command: `cmd-3`" in text and "cmd-1" not in text and "- Command: `cmd-2`" in text
    with pytest.raises(ValueError, match="section name must be lower-case letters, digits and dashes; received 'Bad Name'"):
        write_section("Bad Name", "x", path=path)
