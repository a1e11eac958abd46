"""PyTorch backend (``pip install 'crossrank[torch]'``): GPUs, fp16, and the trainer's models."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.backends.base import BatchTooLargeError
from crossrank.errors import BackendUnavailableError, ConfigurationError, ModelIntegrityError, missing_dependency
from crossrank.models.config import ModelConfig

__all__ = ["TorchBackend"]

_OPTION_KEYS = {"dtype", "trust_remote_code", "num_threads"}


class TorchBackend:
    """Scores pairs with a Hugging Face model wrapped by the model's family.

    The family builds the model (a sequence classifier, or a language model read at its score
    tokens) as a score module: inputs bound by name, ``token_type_ids`` only where the model
    takes them, one raw score per row, rows read at their last real token where the score sits
    there. Weights are read from safetensors only; a load that would leave any weight newly
    initialized is refused. ``trust_remote_code`` stays off unless the caller passes
    ``backend_options={"trust_remote_code": True}``. A CUDA out-of-memory error is raised as
    :class:`~crossrank.backends.base.BatchTooLargeError` so the engine can halve the batch and
    retry.
    """

    name = "torch"
    batch_invariant = True
    # The checkpoint's float weights run as they are, whatever an ONNX graph beside them quantizes.
    quantization = "none"

    def __init__(
        self,
        model_dir: Path,
        config: ModelConfig,
        device: str = "cpu",
        options: Mapping[str, Any] | None = None,
        family: Any = None,
    ) -> None:
        try:
            import torch
        except ImportError:
            raise missing_dependency("torch and transformers", "torch", "The PyTorch backend") from None
        from crossrank.families import ClassifierFamily, ModelFiles

        options = dict(options or {})
        unknown = set(options) - _OPTION_KEYS
        if unknown:
            raise ConfigurationError(f"unknown torch backend options {sorted(unknown)}; expected some of {sorted(_OPTION_KEYS)}")
        if config.torch_weights is None:
            raise BackendUnavailableError(
                f"model {config.name} has no safetensors weights (only ONNX); use backend='onnx'"
            )
        model_dir = Path(model_dir)
        trust_remote_code = options.get("trust_remote_code", False)
        if not isinstance(trust_remote_code, bool):
            # bool("false") is True: only a real boolean may switch on running a model's own code.
            raise ConfigurationError(f"trust_remote_code must be True or False; received {trust_remote_code!r}")
        files = ModelFiles.read(model_dir)
        if files.hf_config.get("auto_map") and not trust_remote_code:
            raise ConfigurationError(
                f"{model_dir / 'config.json'} asks to run custom code (auto_map); refused. Pass "
                "backend_options={'trust_remote_code': True} only if you trust this model."
            )
        config.verify(model_dir, only=(config.torch_weights,))
        _check_safetensors(model_dir / config.torch_weights)
        dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
        dtype_name = options.get("dtype", "float32")
        if dtype_name not in dtypes:
            raise ConfigurationError(f"dtype must be one of {sorted(dtypes)}; received {dtype_name!r}")
        if options.get("num_threads") is not None:
            torch.set_num_threads(int(options["num_threads"]))
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(f"device={device!r} but torch sees no CUDA device")
        self._torch = torch
        self.device = torch.device(device)
        self.family = family if family is not None else ClassifierFamily()
        tokenizer = None
        if self.family.kind != "classifier":
            from crossrank.families.decoder import load_tokenizer

            tokenizer = load_tokenizer(model_dir / config.tokenizer_file)
        self.module = self.family.torch_module(
            files, dtype=dtypes[dtype_name], trust_remote_code=trust_remote_code, tokenizer=tokenizer
        )
        self.module.to(self.device).eval()
        self.position_limit = getattr(self.module, "position_limit", None)

    @property
    def model(self) -> Any:
        """The wrapped Hugging Face model."""
        return self.module.hf_model if self.module is not None else None

    def score(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        torch = self._torch
        if self.position_limit is not None and input_ids.shape[1] > self.position_limit:
            # Never index past the position table: that is an index error on CPU and garbage on GPU.
            raise ConfigurationError(
                f"rows of {input_ids.shape[1]} tokens exceed the model's {self.position_limit} positions"
            )
        feeds = {
            "input_ids": torch.from_numpy(input_ids).to(self.device),
            "attention_mask": torch.from_numpy(attention_mask).to(self.device),
        }
        if "token_type_ids" in self.module.input_names:
            feeds["token_type_ids"] = torch.from_numpy(token_type_ids).to(self.device)
        try:
            with torch.inference_mode():
                scores = self.module(**feeds)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise BatchTooLargeError(f"out of device memory for a batch of shape {tuple(input_ids.shape)}") from None
        return scores.float().cpu().numpy().astype(np.float32)

    def close(self) -> None:
        self.module = None


def _check_safetensors(path: Path) -> None:
    """Read the weights file's header and extent so a corrupt file fails naming itself.

    transformers would otherwise surface the safetensors library's own error type, which
    names neither the file nor the fix.
    """
    from safetensors import safe_open

    if not path.is_file():
        raise ModelIntegrityError(f"model weights file {path} is missing")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            handle.keys()
    except Exception as exc:  # safetensors raises its own untyped SafetensorError
        raise ModelIntegrityError(
            f"model weights file {path} is corrupt or truncated: {exc}. Delete it and fetch the model again."
        ) from None
