"""Concurrent pulls of one model into one CROSSRANK_HOME: one download, complete folders, no debris.

The model comes from a test source registered through the plugin hook; it copies the tiny model
file by file with pauses, so that pulls overlap the way real downloads do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from crossrank import ModelConfig, ModelNotFoundError, ModelSource, SourceEntry, hookimpl, pull_model, resolve_model
from crossrank.models.files import models_dir, sha256_file
from crossrank.models.resolve import cache_folder_for, clean_stale_staging
from crossrank.plugins import new_plugin_manager

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog"]

_CHILD = textwrap.dedent(
    """
    import json, os, sys, threading, time
    from pathlib import Path
    from crossrank import ModelConfig, ModelSource, Reranker, SourceEntry, hookimpl
    from crossrank.models.files import sha256_file
    from crossrank.plugins import new_plugin_manager

    origin, name, log = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    delay, threads, start_at, mode = float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), sys.argv[7]

    class SlowSource(ModelSource):
        name = "slow-test"
        def entries(self):
            return [SourceEntry(name=name, source="test", license=None, description="")]
        @property
        def needs_network(self):
            return False
        def fetch(self, model, destination):
            with open(log, "a") as handle:
                handle.write(f"{os.getpid()} {destination}\\n")
            for file in ("tokenizer.json", "config.json", "model.onnx"):
                data = (origin / file).read_bytes()
                half = len(data) // 2
                with open(destination / file, "wb") as handle:
                    handle.write(data[:half])
                    handle.flush()
                    time.sleep(delay)
                    if mode == "hang":
                        (log.parent / "hanging").write_text(str(destination))
                        time.sleep(600)
                    handle.write(data[half:])
            config = ModelConfig(name=model, onnx_file="model.onnx", revision="slow-1",
                                 files={f: sha256_file(destination / f) for f in ("model.onnx", "tokenizer.json")})
            config.save(destination)
            return config

    class Plugin:
        @hookimpl
        def crossrank_model_sources(self):
            return [SlowSource()]

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(Plugin())
    time.sleep(max(0.0, start_at - time.time()))  # start together with the other processes
    results, errors = [], []

    def work():
        try:
            result = Reranker(name, plugin_manager=manager, cache=None).rerank(
                "what is the capital of france", ["paris is the capital of france", "the cat and the dog"])
            results.append([[d.index, d.score] for d in result])
        except BaseException as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps({"results": results, "errors": errors}))
    """
)


def _start(origin: Path, name: str, log: Path, home: Path, *, delay: float, threads: int, start_at: float, mode: str = "load") -> subprocess.Popen[str]:
    env = {**os.environ, "CROSSRANK_HOME": str(home), "CROSSRANK_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(origin), name, str(log), str(delay), str(threads), str(start_at), mode],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _finish(process: subprocess.Popen[str]) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _leftovers() -> list[Path]:
    root = models_dir()
    return [p for p in root.iterdir() if p.name.startswith(".")] if root.is_dir() else []


@pytest.mark.slow
def test_many_processes_and_threads_pull_one_model_once(isolated_home: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    name = "test/raced-model"
    log = tmp_path / "fetches.log"
    start_at = time.time() + 3.0
    processes = [_start(tiny_model_dir, name, log, isolated_home, delay=0.2, threads=2, start_at=start_at) for _ in range(6)]
    outcomes = [_finish(p) for p in processes]
    assert [o["errors"] for o in outcomes] == [[]] * 6
    fetches = log.read_text().splitlines()
    assert len(fetches) == 1, fetches
    rankings = [ranking for o in outcomes for ranking in o["results"]]
    assert len(rankings) == 12 and all(r == rankings[0] for r in rankings)
    assert _leftovers() == []
    config = ModelConfig.load(cache_folder_for(name))
    config.verify(cache_folder_for(name))


class _SlowInProcessSource(ModelSource):
    name = "slow-in-process"

    def __init__(self, model: str, origin: Path, delay: float) -> None:
        self.model, self.origin, self.delay = model, origin, delay
        self.fetches = 0
        self._count = threading.Lock()

    def entries(self) -> list[SourceEntry]:
        return [SourceEntry(name=self.model, source="test", license=None, description="")]

    @property
    def needs_network(self) -> bool:
        return False

    def fetch(self, model: str, destination: Path) -> ModelConfig:
        with self._count:
            self.fetches += 1
        for file in ("tokenizer.json", "config.json", "model.onnx"):
            time.sleep(self.delay)
            (destination / file).write_bytes((self.origin / file).read_bytes())
        config = ModelConfig(name=model, onnx_file="model.onnx", revision="slow-1",
                             files={"model.onnx": sha256_file(destination / "model.onnx")})
        config.save(destination)
        return config


def test_threads_of_one_process_pull_once(isolated_home: Path, tiny_model_dir: Path) -> None:
    name = "test/threaded-model"
    source = _SlowInProcessSource(name, tiny_model_dir, delay=0.05)

    class Plugin:
        @hookimpl
        def crossrank_model_sources(self) -> list[ModelSource]:
            return [source]

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(Plugin())
    barrier = threading.Barrier(8)
    found: list[str] = []
    errors: list[BaseException] = []

    def pull() -> None:
        barrier.wait()
        try:
            found.append(resolve_model(name, plugin_manager=manager).found_in)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert source.fetches == 1
    assert sorted(found) == ["cache"] * 7 + ["source:slow-in-process"]
    assert _leftovers() == []


@pytest.mark.slow
def test_a_killed_pull_is_never_loaded_and_its_staging_folder_is_removed_later(
    isolated_home: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    name = "test/killed-mid-pull"
    log = tmp_path / "fetches.log"
    hanging = _start(tiny_model_dir, name, log, isolated_home, delay=0.0, threads=1, start_at=0.0, mode="hang")
    marker = tmp_path / "hanging"
    for _ in range(600):
        if marker.exists() or hanging.poll() is not None:
            break
        time.sleep(0.1)
    assert marker.exists(), hanging.communicate()[1][-3000:]
    staging = Path(marker.read_text())
    assert staging.is_dir() and staging.parent == models_dir()
    # While it runs, its half-written folder is invisible and nobody may clean it away.
    with pytest.raises(ModelNotFoundError):
        resolve_model(name, allow_fetch=False)
    clean_stale_staging()
    assert staging.is_dir(), "a live pull's staging folder was removed"
    # A second process arrives while the first holds the pull; then the first is killed.
    waiting = _start(tiny_model_dir, name, log, isolated_home, delay=0.0, threads=2, start_at=0.0)
    for _ in range(100):  # give it time to reach the lock; the outcome does not depend on it
        if waiting.poll() is not None:
            break
        time.sleep(0.05)
    hanging.send_signal(signal.SIGKILL)
    hanging.wait(timeout=60)
    outcome = _finish(waiting)
    assert outcome["errors"] == [] and len(outcome["results"]) == 2
    assert len(log.read_text().splitlines()) == 2, "the waiting process fetched again after the kill"
    assert not staging.exists(), "the killed pull's staging folder was cleaned up"
    assert _leftovers() == []


def test_stale_staging_of_another_model_is_cleaned_by_a_later_pull(isolated_home: Path, tiny_model_dir: Path) -> None:
    stale = models_dir() / ".acme--old-model.k3j4h5g6.partial"
    (stale / "original").mkdir(parents=True)
    (stale / "model.onnx").write_bytes(b"half a graph")
    name = "test/fresh-model"
    source = _SlowInProcessSource(name, tiny_model_dir, delay=0.0)

    class Plugin:
        @hookimpl
        def crossrank_model_sources(self) -> list[ModelSource]:
            return [source]

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(Plugin())
    pull_model(name, plugin_manager=manager)
    assert not stale.exists()
    assert _leftovers() == []
