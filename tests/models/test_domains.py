"""Per-domain models: registry, ``crossrank train --domain``, ``Reranker(domain=...)``, ``crossrank domains``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from crossrank import Reranker
from crossrank.cli import main
from crossrank.errors import ConfigurationError, ModelNotFoundError
from crossrank.models.domains import domain_model_path, list_domains, register_domain, remove_domain


def test_registry_round_trip(isolated_home: Path, tiny_model_dir: Path) -> None:
    assert list_domains() == {} and domain_model_path("legal") is None
    path = register_domain("legal", tiny_model_dir, base_model="tiny", metrics={"dev_ndcg_after": 0.5, "nested": {"x": 1}})
    assert path == isolated_home / "domains" / "legal" and (path / "tokenizer.json").is_file()
    entry = list_domains()["legal"]
    assert entry["base_model"] == "tiny" and entry["metrics"] == {"dev_ndcg_after": 0.5}
    assert domain_model_path("legal") == path
    assert json.loads((isolated_home / "domains.json").read_text())["format"] == "crossrank-domains"
    assert remove_domain("legal") and not path.exists() and list_domains() == {}
    assert not remove_domain("legal")
    with pytest.raises(ConfigurationError, match="domain must be"):
        register_domain("../escape", tiny_model_dir)
    with pytest.raises(ModelNotFoundError):
        register_domain("empty", isolated_home)


def test_reranker_uses_the_domain_model_or_falls_back(
    isolated_home: Path, tiny_model_dir: Path, tiny_int8_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    register_domain("medical", tiny_int8_model_dir)
    reranker = Reranker(str(tiny_model_dir), domain="medical")
    assert reranker.model_path == isolated_home / "domains" / "medical"
    assert reranker.to_dict()["domain"] == "medical"
    assert Reranker.from_dict(reranker.to_dict()).domain == "medical"
    with caplog.at_level(logging.INFO, logger="crossrank"):
        fallback = Reranker(str(tiny_model_dir), domain="legal")
        assert fallback.model_path == tiny_model_dir
    assert any("domain 'legal' has no registered model" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigurationError):
        Reranker(domain="Not A Name")


@pytest.mark.slow
def test_train_cli_registers_the_domain(isolated_home: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("torch")
    from synthetic_judgments import write_synthetic

    data = write_synthetic(tmp_path / "data")
    config = {
        "base_model": str(tiny_model_dir),
        "output_dir": "run",
        "data": {"format": "graded", "path": str(data["graded"].relative_to(tmp_path))},
        "dev_fraction": 0.25,
        "negatives": {"strategy": "bm25", "num_negatives": 3, "pool_size": 8},
        "loss": "lambdaloss",
        "batch_size": 4,
        "learning_rate": 0.001,
        "max_length": 48,
        "dev_candidates": 8,
        "num_threads": 1,
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    bench = tmp_path / "BENCHMARKS.md"
    assert main(["train", str(tmp_path / "train.yaml"), "--domain", "aero", "--benchmark", "training-tiny", "--benchmarks-file", str(bench)]) == 0
    printed = json.loads(capsys.readouterr().out)
    # Without --evaluate the section holds the training figures only, read from this run.
    section = bench.read_text()
    assert "<!-- section:training-tiny -->" in section and "lambdaloss" in section
    assert f"{printed['dev_ndcg_before']:.4f} -> {printed['dev_ndcg_after']:.4f}" in section
    assert '"passed": true' in section and "peak resident memory" in section
    assert printed["model"] == str(tmp_path / "run" / "model") and printed["gate"]["passed"]
    reranker = Reranker(domain="aero")
    assert reranker.model_path == isolated_home / "domains" / "aero"
    assert reranker.rerank("what is the cat", ["the cat cat", "the sun"]).stats.backend == "onnx"
    assert main(["domains", "list"]) == 0
    assert "aero" in capsys.readouterr().out
    assert main(["domains", "list", "--format", "json"]) == 0
    assert "aero" in json.loads(capsys.readouterr().out)["domains"]
    assert main(["domains", "remove", "aero"]) == 0
    assert main(["domains", "remove", "aero"]) == 2
    assert list_domains() == {}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**config, "loss": "nope"}))
    assert main(["train", str(tmp_path / "bad.yaml")]) == 2
    assert "loss must be one of" in capsys.readouterr().err
