"""Speed profiles: registry, ``Reranker(profile=...)``, the environment and the CLI flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossrank import Reranker
from crossrank.config import RerankerConfig
from crossrank.cli import main
from crossrank.errors import ConfigurationError, ModelNotFoundError
from crossrank.models.domains import register_domain
from crossrank.models.profiles import list_profiles, profile_model_path, register_profile, remove_profile


def test_registry_round_trip(isolated_home: Path, tiny_model_dir: Path) -> None:
    assert list_profiles() == {}
    path = register_profile("fast", tiny_model_dir, base_model="teacher", metrics={"dev_ndcg_after": 0.7, "nested": {}})
    assert path == isolated_home / "profiles" / "fast" and (path / "tokenizer.json").is_file()
    assert list_profiles()["fast"]["metrics"] == {"dev_ndcg_after": 0.7}
    assert json.loads((isolated_home / "profiles.json").read_text())["format"] == "crossrank-profiles"
    assert profile_model_path("fast") == path
    assert remove_profile("fast") and not path.exists() and list_profiles() == {}
    assert not remove_profile("fast")
    with pytest.raises(ConfigurationError, match="speed profile must be"):
        register_profile("../up", tiny_model_dir)


def test_reranker_scores_with_the_profile_model(isolated_home: Path, tiny_model_dir: Path, tiny_int8_model_dir: Path) -> None:
    register_profile("fast", tiny_int8_model_dir)
    reranker = Reranker(str(tiny_model_dir), profile="fast")
    assert reranker.model_path == isolated_home / "profiles" / "fast"
    direct = Reranker(str(tiny_int8_model_dir)).score([("a query", "a passage about it")])
    assert reranker.score([("a query", "a passage about it")]) == pytest.approx(direct, abs=1e-6)
    assert Reranker.from_dict(reranker.to_dict()).profile == "fast"
    # The environment names it too (explicit argument > environment > file > default).
    config, sources = RerankerConfig.resolve({}, environ={"CROSSRANK_PROFILE": "fast"})
    assert config.profile == "fast" and sources["profile"] == "environment (CROSSRANK_PROFILE)"
    assert RerankerConfig.resolve({})[0].profile is None


def test_an_unregistered_profile_is_an_error_not_a_fallback(isolated_home: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        Reranker(str(tiny_model_dir), profile="fast").score([("q", "d")])
    message = str(caught.value)
    assert "speed profile 'fast' is not registered" in message
    assert str(isolated_home / "profiles.json") in message and "crossrank distill CONFIG --profile fast" in message
    with pytest.raises(ConfigurationError, match="speed profile must be"):
        Reranker(profile="Not A Name")


def test_a_profile_and_a_domain_model_conflict(isolated_home: Path, tiny_model_dir: Path, tiny_int8_model_dir: Path) -> None:
    register_profile("fast", tiny_int8_model_dir)
    register_domain("legal", tiny_model_dir)
    with pytest.raises(ConfigurationError, match="both name a model"):
        Reranker(profile="fast", domain="legal").score([("q", "d")])
    # A domain with only a calibration does not name a model: the profile's model scores.
    assert Reranker(profile="fast", domain="medical").model_path == isolated_home / "profiles" / "fast"


def test_the_cli_takes_the_profile(isolated_home: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    documents = tmp_path / "docs.jsonl"
    documents.write_text('"a passage"\n"another passage"\n')
    assert main(["rerank", "--query", "q", "--documents", str(documents), "--profile", "fast", "--model", str(tiny_model_dir)]) == 2
    assert "speed profile 'fast' is not registered" in capsys.readouterr().err
    register_profile("fast", tiny_model_dir)
    assert main(["rerank", "--query", "q", "--documents", str(documents), "--profile", "fast", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["documents"]) == 2


def test_profiles_cli_lists_and_removes(isolated_home: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list"]) == 0
    assert "no profiles registered" in capsys.readouterr().out
    register_profile("fast", tiny_model_dir, base_model="teacher", metrics={"dev_ndcg_after": 0.7})
    assert main(["profiles", "list"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("fast\t") and str(isolated_home / "profiles" / "fast") in line and "dev nDCG@10 0.7000" in line
    assert main(["profiles", "list", "--format", "json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["profiles"]) == {"fast"}
    assert main(["profiles", "remove", "fast"]) == 0
    assert "removed speed profile fast" in capsys.readouterr().out
    assert main(["profiles", "remove", "fast"]) == 2
    assert "speed profile 'fast' is not registered (see crossrank profiles list)" in capsys.readouterr().err
