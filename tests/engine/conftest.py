from __future__ import annotations

from pathlib import Path

import pytest

from numpy_backend import build_overlap_model, overlap_plugins


@pytest.fixture(scope="session")
def overlap_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_overlap_model(tmp_path_factory.mktemp("overlap-model"))


@pytest.fixture()
def overlap_plugin_manager():
    return overlap_plugins()
