"""``crossrank export``: a model's PyTorch checkpoint to a verified ONNX model folder."""

from __future__ import annotations

import argparse
import json
import sys

from crossrank.families.export import DEFAULT_INT8_AGREEMENT, DEFAULT_INT8_TOLERANCE, DEFAULT_TOLERANCE, EXPORT_QUANTIZATION


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX (any family), checked against PyTorch before it is written",
        description=(
            "Trace the model's scoring (a classifier's logit, or a language-model reranker's score-token logits "
            "as one output) into an ONNX graph with inputs bound by name and no key/value cache, check it against "
            "PyTorch on probe pairs (batched and one at a time) and write a model folder that "
            "Reranker(model=OUT) loads with the ONNX backend. A graph that disagrees is refused and nothing is "
            "written. --quantize int8 quantizes the weights (crossrank runs activations per token) and refuses "
            "an int8 graph that reorders the probes or moves their scores too much."
        ),
    )
    parser.add_argument("model", help="model folder or name with safetensors weights")
    parser.add_argument("--out", required=True, help="folder to write (must not exist or be empty, unless --force)")
    parser.add_argument("--quantize", choices=EXPORT_QUANTIZATION, default="none", help="int8: dynamic int8 weights (default: none, fp32)")
    parser.add_argument("--family", default=None, help="model family (default: as the engine chooses it; see 'crossrank models info')")
    parser.add_argument("--instruction", default=None, help="instruction recorded for an instruction-aware family's prompt")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per probe row (default: the model's default)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help=f"largest |onnx - torch| / max(1, |torch|) on the probes (default: {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--int8-tolerance", type=float, default=DEFAULT_INT8_TOLERANCE, help=f"int8 gate: largest score change as a share of the probes' fp32 spread (default: {DEFAULT_INT8_TOLERANCE:g})")
    parser.add_argument("--int8-agreement", type=float, default=DEFAULT_INT8_AGREEMENT, help=f"int8 gate: least share of probe pairs kept in order (default: {DEFAULT_INT8_AGREEMENT:g})")
    parser.add_argument("--trust-remote-code", action="store_true", help="run the model folder's own modelling code (auto_map)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from crossrank.families.export import export_model

    result = export_model(
        args.model, args.out, quantize=args.quantize, overwrite=args.force, family=args.family,
        instruction=args.instruction, max_length=args.max_length, opset=args.opset, tolerance=args.tolerance,
        int8_tolerance=args.int8_tolerance, int8_agreement=args.int8_agreement, trust_remote_code=args.trust_remote_code,
    )
    if args.format == "json":
        payload = {
            "folder": str(result.folder), "family": result.family, "instruction": result.instruction,
            "max_length": result.max_length, "quantization": result.quantization, "fp32_parity": result.fp32.to_dict(),
            "int8_gate": result.int8.to_dict() if result.int8 is not None else None, "files": result.files,
        }
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    lines = [
        f"wrote {result.folder} (family {result.family}, {result.quantization}, max_length {result.max_length})",
        f"  fp32 graph vs torch on {result.fp32.pairs} probe pairs: max |diff| {result.fp32.max_abs_diff:.2g} "
        f"(tolerance {result.fp32.tolerance:g})",
    ]
    if result.int8 is not None:
        lines.append(
            f"  int8 (per-token) vs fp32: {result.int8.agreement:.0%} of probe pairs in the same order, max |diff| "
            f"{result.int8.max_abs_diff:.3g} = {result.int8.relative_diff:.1%} of the score spread"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
