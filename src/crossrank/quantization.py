"""Per-token activation quantization for dynamically quantized ONNX graphs.

ONNX Runtime's dynamic quantization (``DynamicQuantizeLinear`` -> ``MatMulInteger``) computes
one activation scale for a whole tensor, so a pair's score depends on which other pairs (and
how much padding) share its batch. :func:`rewrite_per_token` replaces every such node with a
per-token quantizer: each row of the activation matrix gets its own scale, so a pair's score no
longer depends on its batch at all.

Activations are quantized to 7 bits (values 1..127 around a zero point of 64). On x86 CPUs
without VNNI, ONNX Runtime multiplies uint8 by int8 with ``pmaddubsw``, whose int16 pair sums
saturate when activations use the full 8-bit range against full-range int8 weights; 7-bit
activations keep every pair sum below 2**15.

Sessions running a rewritten graph must disable ``MatMulIntegerToFloatFusion`` (see
:data:`PER_TOKEN_DISABLED_OPTIMIZERS`): that fusion assumes a scalar activation scale.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

__all__ = [
    "rewrite_per_token",
    "has_dynamic_quantization",
    "PER_TOKEN_DISABLED_OPTIMIZERS",
    "PerTokenRewriteError",
    "activation_setting",
    "int8_instruction_set",
]

PER_TOKEN_DISABLED_OPTIMIZERS = ("MatMulIntegerToFloatFusion", "DynamicQuantizeMatMulFusion")
_LEVELS = 63.0  # 7-bit symmetric: round(x / scale) in [-63, 63], shifted by the zero point
_ZERO_POINT = 64
_PREFIX = "crossrank_per_token"


class PerTokenRewriteError(ValueError):
    """The graph uses dynamic quantization in a way the per-token rewrite does not support."""


def activation_setting(model_quantization: str, loaded_quantization: str) -> str | None:
    """``"per-tensor"`` when a model that has a per-token graph runs per tensor, else None.

    That is the embedded default's recorded per-tensor graph, or a dynamically quantized model
    (e.g. a trainer export, rewritten per token by default) run with
    ``activation_quantization="per-tensor"``. Scores from the two graphs of one model differ
    slightly, so score caches and calibration provenance record the choice; None (the per-token
    graph, or any other model) adds nothing, which keeps the keys of per-token runs as they were.
    """
    if model_quantization in ("per-token-int8", "dynamic-int8") and loaded_quantization == "dynamic-int8":
        return "per-tensor"
    return None


# Best first: the instruction set ONNX Runtime's x86 int8 matrix kernels use on a CPU with it.
_INT8_INSTRUCTION_SETS = (
    ("amx_int8", "amx-int8"),
    ("avx512_vnni", "avx512-vnni"),
    ("avx_vnni", "avx-vnni"),
    ("avx512bw", "avx512bw"),
    ("avx2", "avx2"),
    ("sse4_1", "sse4.1"),
)


def int8_instruction_set(flags: Iterable[str] | None = None) -> str:
    """The CPU's best instruction set for int8 matrix products, e.g. ``"avx512-vnni"`` or ``"avx2"``.

    Without VNNI (``avx2``, ``avx512bw``, ``sse4.1``) ONNX Runtime multiplies with ``pmaddubsw``,
    whose int16 pair sums saturate for full-range 8-bit activations: a graph quantized per tensor
    (the embedded default's shipped graph) then scores differently from a VNNI or AMX CPU. The
    per-token graphs use 7-bit activations and score alike on all of them. ``flags`` are
    ``/proc/cpuinfo`` flags (read when None); other platforms return their machine name.

    Example:
        >>> int8_instruction_set(["fpu", "avx2", "avx512bw", "avx512_vnni"])
        'avx512-vnni'
    """
    if flags is None:
        flags = _cpu_flags()
        if flags is None:
            import platform

            return platform.machine().lower() or "unknown"
    present = set(flags)
    for flag, name in _INT8_INSTRUCTION_SETS:
        if flag in present:
            return name
    return "none"


def _cpu_flags() -> list[str] | None:
    from pathlib import Path

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return line.split(":", 1)[1].split()
    return None


def has_dynamic_quantization(model: object) -> bool:
    """True when an ONNX ``ModelProto`` contains ``DynamicQuantizeLinear`` nodes."""
    return any(node.op_type == "DynamicQuantizeLinear" for node in model.graph.node)  # type: ignore[attr-defined]


def rewrite_per_token(model: object) -> object:
    """Return a copy of ``model`` whose dynamic activation quantization is per token.

    Raises:
        PerTokenRewriteError: a quantized activation feeds something other than the
            ``A`` input of ``MatMulInteger`` (its scale and zero point only feed ``Mul`` and
            ``MatMulInteger``), so per-row scales would not be valid there.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())  # type: ignore[attr-defined]
    graph = model.graph
    consumers: dict[str, list[tuple[object, int]]] = defaultdict(list)
    for node in graph.node:
        for position, name in enumerate(node.input):
            consumers[name].append((node, position))

    constants = {
        f"{_PREFIX}_zero_point": np.array(_ZERO_POINT, dtype=np.uint8),
        f"{_PREFIX}_inv_levels": np.array(1.0 / _LEVELS, dtype=np.float32),
        f"{_PREFIX}_eps": np.array(1e-12, dtype=np.float32),
        f"{_PREFIX}_offset": np.array(float(_ZERO_POINT), dtype=np.float32),
        f"{_PREFIX}_low": np.array(float(_ZERO_POINT) - _LEVELS, dtype=np.float32),
        f"{_PREFIX}_high": np.array(float(_ZERO_POINT) + _LEVELS, dtype=np.float32),
    }
    rewritten = 0
    nodes = []
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        quantized, scale, zero_point = node.output
        for consumer, position in consumers[quantized]:
            if consumer.op_type != "MatMulInteger" or position != 0:  # type: ignore[attr-defined]
                raise PerTokenRewriteError(
                    f"quantized activation {quantized!r} feeds {consumer.op_type} input {position}"  # type: ignore[attr-defined]
                )
        for consumer, _ in consumers[scale]:
            if consumer.op_type != "Mul":  # type: ignore[attr-defined]
                raise PerTokenRewriteError(f"activation scale {scale!r} feeds {consumer.op_type}")  # type: ignore[attr-defined]
        p = f"{quantized}_{_PREFIX}"
        nodes += [
            helper.make_node("Abs", [node.input[0]], [f"{p}_abs"]),
            helper.make_node("ReduceMax", [f"{p}_abs"], [f"{p}_absmax"], axes=[-1], keepdims=1),
            helper.make_node("Max", [f"{p}_absmax", f"{_PREFIX}_eps"], [f"{p}_range"]),
            helper.make_node("Mul", [f"{p}_range", f"{_PREFIX}_inv_levels"], [scale]),
            helper.make_node("Div", [node.input[0], scale], [f"{p}_scaled"]),
            helper.make_node("Round", [f"{p}_scaled"], [f"{p}_rounded"]),
            helper.make_node("Add", [f"{p}_rounded", f"{_PREFIX}_offset"], [f"{p}_shifted"]),
            helper.make_node("Clip", [f"{p}_shifted", f"{_PREFIX}_low", f"{_PREFIX}_high"], [f"{p}_clipped"]),
            helper.make_node("Cast", [f"{p}_clipped"], [quantized], to=TensorProto.UINT8),
            helper.make_node("Identity", [f"{_PREFIX}_zero_point"], [zero_point]),
        ]
        rewritten += 1
    if rewritten == 0:
        raise PerTokenRewriteError("the graph has no DynamicQuantizeLinear node to rewrite")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset >= 18:
        # ReduceMax takes its axes as an input from opset 18 on.
        constants[f"{_PREFIX}_axes"] = np.array([-1], dtype=np.int64)
        for new in nodes:
            if new.op_type == "ReduceMax" and new.output[0].endswith(f"{_PREFIX}_absmax"):
                del new.attribute[:]
                new.attribute.extend([helper.make_attribute("keepdims", 1)])
                new.input.append(f"{_PREFIX}_axes")
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model
