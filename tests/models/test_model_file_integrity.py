"""Every file recorded in crossrank.json is verified on load; the fingerprint covers what changes a score."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from crossrank import ModelConfig, ModelIntegrityError, Reranker, resolve_model
from crossrank.models.files import cached_sha256, model_fingerprint, sha256_file

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog"]


def _record_files(folder: Path, *names: str, **changes: object) -> ModelConfig:
    config = ModelConfig.detect(folder, name="tiny")
    config.revision = "test-1"
    config.files = {name: sha256_file(folder / name) for name in names}
    for key, value in changes.items():
        setattr(config, key, value)
    config.save(folder)
    return config


def _swap_two_vocabulary_ids(tokenizer: Path) -> None:
    data = json.loads(tokenizer.read_text())
    vocab = data["model"]["vocab"]
    vocab["paris"], vocab["cat"] = vocab["cat"], vocab["paris"]
    tokenizer.write_text(json.dumps(data))


def test_a_tampered_tokenizer_is_refused_naming_the_file(tiny_model_copy: Path) -> None:
    _record_files(tiny_model_copy, "model.onnx", "tokenizer.json")
    assert len(Reranker(str(tiny_model_copy)).rerank(QUERY, DOCS)) == 2
    _swap_two_vocabulary_ids(tiny_model_copy / "tokenizer.json")
    with pytest.raises(ModelIntegrityError, match="tokenizer.json") as info:
        Reranker(str(tiny_model_copy)).warm_up()
    assert str(tiny_model_copy / "tokenizer.json") in str(info.value)


@pytest.mark.parametrize("recorded", ["config.json", "model.safetensors"])
def test_every_recorded_file_is_verified_whichever_backend_runs(tiny_model_copy: Path, recorded: str) -> None:
    _record_files(tiny_model_copy, "model.onnx", "tokenizer.json", recorded)
    with open(tiny_model_copy / recorded, "r+b") as handle:
        handle.seek(0, os.SEEK_END)
        handle.write(b" ")
    with pytest.raises(ModelIntegrityError, match=recorded):
        resolve_model(str(tiny_model_copy))
    with pytest.raises(ModelIntegrityError, match=recorded):
        Reranker(str(tiny_model_copy), backend="onnx").warm_up()


def test_a_change_after_a_cached_verification_is_still_caught(tiny_model_copy: Path) -> None:
    """The verified-hash cache must not hide a rewrite that keeps the size and the modification time."""
    _record_files(tiny_model_copy, "model.onnx", "tokenizer.json")
    resolve_model(str(tiny_model_copy))  # verified once: its hash is now cached
    tokenizer = tiny_model_copy / "tokenizer.json"
    before = tokenizer.stat()
    text = tokenizer.read_text()
    swapped = text.replace('"paris"', '"xaris"', 1)
    assert len(swapped) == len(text) and swapped != text
    with open(tokenizer, "r+", encoding="utf-8") as handle:  # same inode, same size
        handle.write(swapped)
    os.utime(tokenizer, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert tokenizer.stat().st_size == before.st_size and tokenizer.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(ModelIntegrityError, match="tokenizer.json"):
        resolve_model(str(tiny_model_copy))


def test_cached_hash_is_the_real_hash(tiny_model_dir: Path) -> None:
    path = tiny_model_dir / "model.onnx"
    assert cached_sha256(path) == sha256_file(path) == cached_sha256(path)


def test_fingerprint_follows_every_file_and_setting_that_changes_a_score(tiny_model_copy: Path, tmp_path: Path) -> None:
    config = _record_files(tiny_model_copy, "model.onnx", "tokenizer.json")
    base = model_fingerprint(tiny_model_copy, config)
    # Same contents elsewhere, under another name and revision: same fingerprint.
    moved = tmp_path / "moved"
    shutil.copytree(tiny_model_copy, moved)
    relabelled = ModelConfig.load(moved)
    relabelled.name, relabelled.revision = "other-name", "other-revision"
    assert model_fingerprint(moved, relabelled) == base
    # A setting that changes how the model runs.
    shorter = ModelConfig.load(moved)
    shorter.max_length = 64
    assert model_fingerprint(moved, shorter) != base
    seen = {base, model_fingerprint(moved, shorter)}
    # Each file that changes a score, whether or not crossrank.json records it.
    for name in ("tokenizer.json", "model.onnx", "config.json", "model.safetensors"):
        changed = tmp_path / f"changed-{name}"
        shutil.copytree(tiny_model_copy, changed)
        if name.endswith(".onnx"):
            import onnx

            graph = onnx.load(str(changed / name))
            graph.graph.initializer[0].raw_data = bytes(reversed(graph.graph.initializer[0].raw_data))
            onnx.save_model(graph, str(changed / name))
        else:
            with open(changed / name, "ab") as handle:
                handle.write(b" ")
        fingerprint = model_fingerprint(changed, ModelConfig.load(changed))
        assert fingerprint not in seen, name
        seen.add(fingerprint)


def test_fingerprint_names_a_missing_recorded_file(tiny_model_copy: Path) -> None:
    config = _record_files(tiny_model_copy, "model.onnx", "tokenizer.json")
    before = model_fingerprint(tiny_model_copy, config)
    (tiny_model_copy / "model.safetensors").unlink()  # named, not recorded: its absence changes the identity
    assert model_fingerprint(tiny_model_copy, config) != before
    (tiny_model_copy / "tokenizer.json").unlink()
    with pytest.raises(ModelIntegrityError, match="tokenizer.json"):
        model_fingerprint(tiny_model_copy, config)
