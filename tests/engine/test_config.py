"""One declarative configuration: every option declared once, one precedence everywhere."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from crossrank import ConfigurationError, Reranker
from crossrank.config import GROUPS, OTHER_VARIABLES, RerankerConfig, option_specs, options_markdown, read_config_file

REPO = Path(__file__).resolve().parents[2]


def test_every_option_is_a_config_field_with_one_declaration() -> None:
    specs = option_specs()
    assert list(specs) == [f.name for f in dataclasses.fields(RerankerConfig)]
    for spec in specs.values():
        assert spec.group in GROUPS and spec.help and spec.env == "CROSSRANK_" + spec.name.upper()
        assert spec.env not in OTHER_VARIABLES
        # The default passes its own check, and the documented default is the field's default.
        assert spec.check(spec.name, spec.default) == spec.default
        assert getattr(RerankerConfig(), spec.name) == spec.default


def test_the_options_page_is_generated_from_the_declarations() -> None:
    page = (REPO / "docs" / "options.md").read_text(encoding="utf-8")
    assert page.endswith(options_markdown())
    for name in option_specs():
        assert f"| `{name}` |" in page


def test_cli_flags_and_adapter_fields_are_derived() -> None:
    import argparse

    from crossrank.cli.options import add_reranker_options

    parser = argparse.ArgumentParser()
    add_reranker_options(parser, decision=True)
    flags = {action.dest for action in parser._actions if action.dest != "help"}
    assert flags == {name for name, spec in option_specs().items() if spec.cli}
    pytest.importorskip("haystack")
    from crossrank.adapters._common import ENGINE_DEFAULTS
    from crossrank.adapters.haystack import CrossRankRanker

    assert set(ENGINE_DEFAULTS) == {name for name, spec in option_specs().items() if spec.adapter}
    assert set(ENGINE_DEFAULTS) <= set(inspect.signature(CrossRankRanker.__init__).parameters)


def test_resolve_reads_the_environment_only_when_given_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSRANK_TOP_K", "3")
    monkeypatch.setenv("CROSSRANK_DISABLED", "1")
    config, sources = RerankerConfig.resolve({"batch_size": 4})
    assert config.top_k is None and not config.disabled and sources["top_k"] == "default"
    assert sources["batch_size"] == "argument"
    file = tmp_path / "c.toml"
    file.write_text("top_k = 7\nthreshold = 0.2\n", encoding="utf-8")
    config, sources = RerankerConfig.resolve({}, environ={"CROSSRANK_TOP_K": "3"}, file=file)
    assert (config.top_k, config.threshold) == (3, 0.2)
    assert sources["top_k"] == "environment (CROSSRANK_TOP_K)" and sources["threshold"] == f"file ({file})"
    assert sources["config_file"] == str(file)
    # from_config never reads the process environment (CROSSRANK_DISABLED=1 is set above).
    internal = Reranker.from_config(RerankerConfig(model="/nowhere"))
    assert not internal.disabled and internal.top_k is None


def test_a_typo_never_passes_silently(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"CROSSRANK_TOPK \(did you mean CROSSRANK_TOP_K\?\)"):
        RerankerConfig.resolve({}, environ={"CROSSRANK_TOPK": "3"})
    outside = tmp_path / "outside.toml"
    outside.write_text('top_k = 3\n[crossrank]\nthreshold = 0.5\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"\['top_k'\] stand outside the \[crossrank\] table"):
        read_config_file(outside)
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text("top_k: 3\n1: 2\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="option names must be strings"):
        read_config_file(mixed)
    with pytest.raises(ConfigurationError, match="CROSSRANK_BATCH_SIZE.*batch_size must be an int >= 1"):
        RerankerConfig.resolve({}, environ={"CROSSRANK_BATCH_SIZE": "0"})
    huge = "9" * 5000
    with pytest.raises(ConfigurationError, match="CROSSRANK_TOP_K.*integer"):
        RerankerConfig.resolve({}, environ={"CROSSRANK_TOP_K": huge})
    with pytest.raises(ConfigurationError, match=r"unknown option\(s\) \['top_kk'\]"):
        RerankerConfig.resolve({"top_kk": 1})


def test_config_is_immutable_and_replace_returns_a_checked_copy() -> None:
    config = RerankerConfig(threshold=0.5, top_k=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.top_k = 4  # type: ignore[misc]
    changed = config.replace(top_k=False, threshold=False)
    assert (changed.top_k, changed.threshold) == (None, None) and (config.top_k, config.threshold) == (3, 0.5)
    with pytest.raises(ConfigurationError, match="batch_size"):
        config.replace(batch_size=0)
    assert RerankerConfig.from_dict(config.to_dict()) == config


def test_numpy_numbers_are_numbers() -> None:
    np = pytest.importorskip("numpy")
    config = RerankerConfig(threshold=np.float32(0.25), top_k=np.int64(2), first_stage_weight=np.float64(0.3))
    assert (config.threshold, config.top_k, config.first_stage_weight) == (0.25, 2, 0.3)
    assert type(config.top_k) is int and type(config.threshold) is float
    with pytest.raises(Exception, match="threshold"):
        RerankerConfig(threshold=np.bool_(True))
