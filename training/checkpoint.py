"""Crash-safe, resumable training checkpoints (safetensors + JSON, never pickle).

A checkpoint folder holds the model weights, the optimizer moments, the torch RNG state and a
``state.json`` with the position in the data order. It is written to a temporary folder and
renamed into place, then ``latest.json`` (written atomically) is pointed at it, so a process
killed at any moment leaves either the previous checkpoint or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from crossrank.models.files import atomic_write_text

__all__ = ["load_latest_checkpoint", "restore_optimizer", "save_checkpoint"]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: Path, model: Any, optimizer: Any, state: dict[str, Any], *, keep: int = 1) -> Path:
    """Write a checkpoint for ``state["global_step"]`` atomically and return its folder."""
    import torch
    from safetensors.torch import save_file

    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['global_step']:08d}"
    final = root / name
    tmp = root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    weights: dict[str, Any] = {}
    seen: set[int] = set()
    for key, value in model.state_dict().items():
        tensor = value.detach().contiguous().cpu()
        if tensor.data_ptr() in seen:
            # Tied weights (a language model's output layer and its embeddings) share memory, which
            # safetensors refuses: each key gets its own copy, and loading ties them again.
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        weights[key] = tensor
    save_file(weights, str(tmp / "model.safetensors"))
    optimizer_state = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    for index, slots in optimizer_state["state"].items():
        for slot, value in slots.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}.{slot}"] = tensor.detach().contiguous().cpu()
    tensors["__rng__"] = torch.get_rng_state()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "optimizer.json").write_text(json.dumps({"param_groups": optimizer_state["param_groups"]}))
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    for file in tmp.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    atomic_write_text(root / "latest.json", json.dumps({"checkpoint": name}) + "\n")
    older = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and p.name != name)
    for old in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_latest_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The folder and state of the last complete checkpoint, or None."""
    pointer = run_dir / "checkpoints" / "latest.json"
    if not pointer.is_file():
        return None
    folder = run_dir / "checkpoints" / json.loads(pointer.read_text())["checkpoint"]
    return folder, json.loads((folder / "state.json").read_text())


def restore_optimizer(folder: Path, model: Any, optimizer: Any) -> None:
    """Load weights, optimizer moments and the torch RNG state saved by :func:`save_checkpoint`."""
    import torch
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    torch.set_rng_state(tensors.pop("__rng__"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, slot = key.split(".", 1)
        state.setdefault(int(index), {})[slot] = value
    groups = json.loads((folder / "optimizer.json").read_text())["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
