"""Options from arguments, environment and files; the disabled switch; ``crossrank config show``."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from crossrank import ConfigurationError, Document, MissingDependencyError, Reranker
from crossrank.cli import main
from crossrank.settings import OPTIONS, env_name, read_config_file, resolve_settings

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog", "berlin is a city in germany"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OPTIONS:
        monkeypatch.delenv(env_name(name), raising=False)
    monkeypatch.delenv("CROSSRANK_CONFIG", raising=False)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crossrank.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_is_argument_then_environment_then_file_then_default(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'top_k = 7\nbatch_size = 4\nbackend = "torch"\nthreshold = 0.2\n')
    environ = {"CROSSRANK_BATCH_SIZE": "8", "CROSSRANK_BACKEND": "onnx", "CROSSRANK_CONFIG": str(config)}
    effective = resolve_settings({"backend": "auto"}, environ=environ)
    assert effective.values["backend"] == "auto" and effective.sources["backend"] == "argument"
    assert effective.values["batch_size"] == 8 and effective.sources["batch_size"] == "environment (CROSSRANK_BATCH_SIZE)"
    assert effective.values["top_k"] == 7 and effective.sources["top_k"] == f"file ({config})"
    assert effective.values["threshold"] == 0.2
    assert effective.values["max_windows"] == 8 and effective.sources["max_windows"] == "default"
    assert effective.config_file == config


def test_reranker_reads_environment_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    config = _toml(tmp_path, f'[crossrank]\nmodel = "{tiny_model_dir}"\ntop_k = 2\nlong_documents = "window"\n')
    monkeypatch.setenv("CROSSRANK_CONFIG", str(config))
    monkeypatch.setenv("CROSSRANK_THRESHOLD", "calibrated")
    monkeypatch.setenv("CROSSRANK_BACKEND_OPTIONS", '{"num_threads": 1}')
    monkeypatch.setenv("CROSSRANK_ALLOW_DOWNLOAD", "no")
    reranker = Reranker(top_k=1)
    assert reranker.model == str(tiny_model_dir)
    assert reranker.top_k == 1 and reranker.setting_sources["top_k"] == "argument"
    assert reranker.long_documents == "window"
    assert reranker.threshold == "calibrated"
    assert reranker.backend_options == {"num_threads": 1}
    assert reranker.allow_download is False
    monkeypatch.setenv("CROSSRANK_THRESHOLD", "none")
    plain = Reranker()
    assert plain.threshold is None
    assert len(plain.rerank(QUERY, DOCS)) == 2  # top_k from the file
    # A saved configuration is explicit, so the environment cannot change it when it is loaded.
    data = plain.to_dict()
    monkeypatch.setenv("CROSSRANK_TOP_K", "3")
    assert Reranker.from_dict(data).top_k == 2
    assert Reranker().top_k == 3


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "crossrank.yaml"
    path.write_text("backend: torch\nmax_length: null\ndisabled: true\ncache: memory:10\n", encoding="utf-8")
    effective = resolve_settings(config_file=path, environ={})
    assert effective.values["backend"] == "torch"
    assert effective.values["max_length"] is None
    assert effective.values["disabled"] is True
    assert effective.values["cache"] == "memory:10"


def test_yaml_without_pyyaml_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "crossrank.yml"
    path.write_text("top_k: 3\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` fail as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'crossrank\[yaml\]'"):
        read_config_file(path)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CROSSRANK_BATCH_SIZE": "many"}, "CROSSRANK_BATCH_SIZE.*integer"),
        ({"CROSSRANK_DISABLED": "perhaps"}, "CROSSRANK_DISABLED.*true or false"),
        ({"CROSSRANK_THRESHOLD": "high"}, "CROSSRANK_THRESHOLD.*number"),
        ({"CROSSRANK_BACKEND_OPTIONS": "{not json"}, "CROSSRANK_BACKEND_OPTIONS.*JSON"),
    ],
)
def test_bad_environment_values_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        resolve_settings(environ=environ)


def test_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown option\(s\) \['top_kk'\]"):
        resolve_settings(config_file=_toml(tmp_path, "top_kk = 3\n"), environ={})
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        resolve_settings(config_file=_toml(tmp_path, "top_k = = 3\n"), environ={})
    with pytest.raises(ConfigurationError, match="must be an integer"):
        resolve_settings(config_file=_toml(tmp_path, 'top_k = "three"\n'), environ={})
    with pytest.raises(ConfigurationError, match="not found"):
        resolve_settings(config_file=tmp_path / "absent.toml", environ={})
    ini = tmp_path / "crossrank.ini"
    ini.write_text("top_k=3\n")
    with pytest.raises(ConfigurationError, match=".toml, .yaml or .yml"):
        resolve_settings(config_file=ini, environ={})
    # A value the file parses but the engine refuses is still refused by the constructor.
    with pytest.raises(ConfigurationError, match="batch_size"):
        Reranker(config_file=_toml(tmp_path, "batch_size = 0\n"))


def test_disabled_passes_documents_through_without_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSRANK_DISABLED", "1")
    reranker = Reranker(str(tmp_path / "no-model-here"), allow_download=False, threshold=0.9)
    documents = [Document(text, metadata={"id": i}) for i, text in enumerate(DOCS)]
    result = reranker.rerank(QUERY, documents, top_k=2)
    assert [d.index for d in result] == [0, 1]
    assert [d.text for d in result] == DOCS[:2]
    assert [d.metadata for d in result] == [{"id": 0}, {"id": 1}]
    assert all(math.isnan(d.score) for d in result)
    assert result.served_by == "disabled"
    assert not result.abstained
    assert not reranker.is_loaded
    assert documents[0].metadata == {"id": 0}
    assert Reranker(str(tmp_path / "no-model-here"), disabled=False).disabled is False  # argument wins


def test_config_show_prints_values_and_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _toml(tmp_path, "top_k = 5\n")
    monkeypatch.setenv("CROSSRANK_CONFIG", str(config))
    monkeypatch.setenv("CROSSRANK_DISABLED", "true")
    assert main(["config", "show", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config_file"] == str(config)
    assert shown["options"]["top_k"] == {"value": 5, "source": f"file ({config})"}
    assert shown["options"]["disabled"] == {"value": True, "source": "environment (CROSSRANK_DISABLED)"}
    assert shown["options"]["batch_size"] == {"value": 32, "source": "default"}
    assert set(shown["options"]) == set(OPTIONS)
    assert main(["config", "show"]) == 0
    table = capsys.readouterr().out
    top_k_line = next(line for line in table.splitlines() if line.startswith("top_k "))
    assert top_k_line.split()[1] == "5" and top_k_line.endswith(f"file ({config})")
    monkeypatch.setenv("CROSSRANK_BATCH_SIZE", "zero")
    assert main(["config", "show"]) == 2
    assert "CROSSRANK_BATCH_SIZE" in capsys.readouterr().err


def test_long_documents_default_is_query_aware_selection(tiny_model_dir: Path) -> None:
    from crossrank import Reranker

    query = "what is the capital of france"
    document = " ".join(f"Sentence {i} is about the weather in a small town." for i in range(12)) + " Paris is the capital of France."
    default = Reranker(str(tiny_model_dir), max_length=32)
    assert default.long_documents == "select"
    chosen = default.score([(query, document)], raw=True)
    assert chosen.tolist() == Reranker(str(tiny_model_dir), max_length=32, long_documents="select").score([(query, document)], raw=True).tolist()
    assert chosen.tolist() != Reranker(str(tiny_model_dir), max_length=32, long_documents="truncate").score([(query, document)], raw=True).tolist()
