"""Crash safety: a run killed with SIGKILL mid-epoch resumes with the same data order and result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("bm25s")

from crossrank.training.trainer import train
from synthetic_judgments import write_synthetic
from test_training import make_config

KILL_AT_STEP = 5


def _config(model: Path, out: Path, data: Path):
    # 12 train queries, 2 groups each, batch 4: 6 steps per epoch; checkpoints every 2 steps.
    return make_config(
        model, out, data, "beir",
        negatives={"strategy": "mixed", "ratio": [2, 2], "pool_size": 8},
        loss="listnet", epochs=2, checkpoint_every_steps=2, eval_every_steps=3,
    )


def _order(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "data-order.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_with_the_same_data_order(tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    data = write_synthetic(tmp_path / "data")["beir"]
    reference = train(_config(tiny_model_dir, tmp_path / "reference", data))

    killed_dir = tmp_path / "killed"
    config = _config(tiny_model_dir, killed_dir, data)
    script = textwrap.dedent(
        f"""
        import json, os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from crossrank.training.config import TrainConfig
        from crossrank.training.trainer import train

        def kill(info):
            if info.global_step == {KILL_AT_STEP}:
                os.kill(os.getpid(), signal.SIGKILL)

        train(TrainConfig.from_dict(json.loads({json.dumps(json.dumps(config.to_dict()))})), callbacks=[kill])
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    latest = json.loads((killed_dir / "checkpoints" / "latest.json").read_text())["checkpoint"]
    state = json.loads((killed_dir / "checkpoints" / latest / "state.json").read_text())
    assert state["global_step"] == 4 and state["epoch"] == 0 and state["step_in_epoch"] == 4  # mid-epoch
    assert len(_order(killed_dir)) == KILL_AT_STEP  # step 5 ran after the checkpoint and is replayed
    assert not list((killed_dir / "checkpoints").glob(".*.tmp"))

    resumed = train(config)
    assert _order(killed_dir) == _order(reference.run_dir)
    assert resumed.metrics["steps"] == reference.metrics["steps"] == 12
    final_a = load_file(str(reference.run_dir / "best" / "model.safetensors"))
    final_b = load_file(str(resumed.run_dir / "best" / "model.safetensors"))
    for name, value in final_a.items():
        assert (abs(value - final_b[name]) <= 1e-5).all(), name
    history_a = [h for h in json.loads((reference.run_dir / "history.json").read_text()) if "dev_ndcg@10" in h]
    history_b = [h for h in json.loads((resumed.run_dir / "history.json").read_text()) if "dev_ndcg@10" in h]
    assert [h["step"] for h in history_a] == [h["step"] for h in history_b]
    assert [round(h["dev_ndcg@10"], 6) for h in history_a] == [round(h["dev_ndcg@10"], 6) for h in history_b]


def test_resume_refuses_a_changed_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    from crossrank.errors import ConfigurationError

    data = write_synthetic(tmp_path / "data")["pairs"]
    config = make_config(tiny_model_dir, tmp_path / "run", data, "pairs", max_steps=1)
    train(config)
    changed = make_config(tiny_model_dir, tmp_path / "run", data, "pairs", max_steps=1, learning_rate=0.5)
    with pytest.raises(ConfigurationError, match="different configuration"):
        train(changed)
