"""The plugin registry: third-party backends, model sources and calibrators through pluggy hooks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crossrank import BackendSpec, Calibrator, ModelConfig, ModelSource, PluginError, Reranker, SourceEntry, hookimpl
from crossrank.calibration import Calibration
from crossrank.plugins import AUTOLOAD_ENV, backend_registry, calibrator_registry, model_sources, new_plugin_manager


class TokenCountBackend:
    """Scores a pair by its number of real tokens: simple, deterministic, clearly not the ONNX model."""

    name = "token-count"
    batch_invariant = True

    def __init__(self, model_dir: Path, config: ModelConfig, device: str, options: dict) -> None:
        self.scale = float(options.get("scale", 1.0))
        self.calls = 0

    def score(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        self.calls += 1
        return attention_mask.sum(axis=1).astype(np.float32) * self.scale

    def close(self) -> None:
        pass


class TokenCountPlugin:
    @hookimpl
    def crossrank_backends(self) -> list[BackendSpec]:
        return [BackendSpec(name="token-count", factory=TokenCountBackend, description="counts tokens")]


class ScaledCalibrator(Calibrator):
    kind = "halved-sigmoid"

    def transform(self, logits: np.ndarray) -> np.ndarray:
        return 0.5 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))

    def params(self) -> dict:
        return {}

    @classmethod
    def from_params(cls, params: dict) -> "ScaledCalibrator":
        return cls()


def test_third_party_backend_is_used_by_name(tiny_model_dir: Path) -> None:
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(TokenCountPlugin(), name="token-count-plugin")
    reranker = Reranker(str(tiny_model_dir), backend="token-count", plugin_manager=manager, backend_options={"scale": 0.5})
    result = reranker.rerank("cat", ["the cat", "the cat and the dog and the sun"])
    assert reranker.backend_name == "token-count"
    assert [d.index for d in result] == [1, 0]
    from tokenizers import Tokenizer

    tokens = len(Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json")).encode("cat", "the cat and the dog and the sun").ids)
    assert result[0].raw_score == pytest.approx(0.5 * tokens)
    assert result.stats.backend == "token-count"


def test_builtin_backends_are_registered_through_the_same_hook() -> None:
    manager = new_plugin_manager(load_entry_points=False)
    assert {"onnx", "torch"} <= set(backend_registry(manager))
    assert [s.name for s in model_sources(manager)] == ["embedded", "huggingface-hub"]
    assert {"sigmoid", "platt", "temperature"} <= set(calibrator_registry(manager))


def test_unknown_backend_names_the_registered_ones(tiny_model_dir: Path) -> None:
    from crossrank import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="registered"):
        Reranker(str(tiny_model_dir), backend="nope").warm_up()


def test_third_party_calibrator_loads_from_json(tiny_model_dir: Path) -> None:
    manager = new_plugin_manager(load_entry_points=False)

    class Plugin:
        @hookimpl
        def crossrank_calibrators(self) -> list[type[Calibrator]]:
            return [ScaledCalibrator]

    manager.register(Plugin())
    data = {"format": "crossrank-calibration", "version": 1, "calibrator": {"kind": "halved-sigmoid"}}
    calibration = Calibration.from_dict(data, registry=calibrator_registry(manager))
    assert isinstance(calibration.calibrator, ScaledCalibrator)
    probabilities = Reranker(str(tiny_model_dir), calibration=calibration).score([("cat", "the cat")])
    assert 0.0 <= probabilities[0] <= 0.5


def test_plugin_returning_garbage_is_reported() -> None:
    manager = new_plugin_manager(load_entry_points=False)

    class Broken:
        @hookimpl
        def crossrank_backends(self) -> list:
            return ["not a spec"]

    manager.register(Broken())
    with pytest.raises(PluginError, match="BackendSpec"):
        backend_registry(manager)


def test_third_party_model_source_fills_the_cache(tiny_model_dir: Path, isolated_home: Path) -> None:
    import shutil

    class FolderSource(ModelSource):
        name = "test-folder"

        @property
        def needs_network(self) -> bool:
            return False

        def entries(self) -> list[SourceEntry]:
            return [SourceEntry("acme/tiny", "a test folder", "Apache-2.0", "tiny test model")]

        def fetch(self, model: str, destination: Path) -> ModelConfig:
            for name in ("tokenizer.json", "model.onnx", "config.json"):
                shutil.copy(tiny_model_dir / name, destination / name)
            config = ModelConfig.detect(destination, name=model)
            config.revision = "v1"
            config.save(destination)
            return config

    class Plugin:
        @hookimpl
        def crossrank_model_sources(self) -> list[ModelSource]:
            return [FolderSource()]

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(Plugin())
    reranker = Reranker("acme/tiny", plugin_manager=manager).warm_up()
    assert reranker.model_id == "acme/tiny@v1"
    assert (isolated_home / "models" / "acme--tiny" / "crossrank.json").is_file()
    assert not [p for p in (isolated_home / "models").iterdir() if p.name.startswith(".")], "no staging folder left"


def test_entry_point_plugins_load_unless_disabled(tmp_path: Path) -> None:
    """A real installed distribution with a crossrank entry point, found through importlib.metadata."""
    site = tmp_path / "site"
    (site / "acme_plugin").mkdir(parents=True)
    (site / "acme_plugin" / "__init__.py").write_text(
        "import numpy as np\n"
        "from crossrank import BackendSpec, hookimpl\n"
        "class B:\n"
        "    name='acme'; batch_invariant=True\n"
        "    def __init__(self, **kw): pass\n"
        "    def score(self, i, m, t): return m.sum(axis=1).astype('float32')\n"
        "    def close(self): pass\n"
        "@hookimpl\n"
        "def crossrank_backends():\n"
        "    return [BackendSpec(name='acme', factory=lambda **kw: B(**kw))]\n"
    )
    dist = site / "acme_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[crossrank]\nacme = acme_plugin\n")
    code = "from crossrank.plugins import backend_registry; print(sorted(backend_registry()))"
    env_base = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_base, check=True)
    assert "acme" in json.loads(loaded.stdout.strip().replace("'", '"'))
    disabled = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**env_base, AUTOLOAD_ENV: "1"}, check=True
    )
    names = json.loads(disabled.stdout.strip().replace("'", '"'))
    assert "acme" not in names and "onnx" in names
