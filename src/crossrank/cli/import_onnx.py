"""``crossrank import-onnx``: rebuild a float PyTorch checkpoint from an int8 ONNX BERT cross-encoder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from crossrank.models.sources import DEFAULT_MODEL


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "import-onnx",
        help="rebuild a float PyTorch checkpoint from an (int8) ONNX BERT cross-encoder (lossy)",
        description=(
            "De-quantize the ONNX graph's weights and write a BertForSequenceClassification checkpoint "
            "(model.safetensors, config.json, tokenizer files). The import is lossy: int8 weights keep "
            "256 levels per tensor. With --compare DATA, also measure how closely the rebuilt model "
            "reproduces the graph's logits and rankings on BM25 candidates of a BEIR data set."
        ),
    )
    parser.add_argument("source", nargs="?", default=DEFAULT_MODEL, help="ONNX file, model folder or model name (default: the embedded model)")
    parser.add_argument("target", help="folder to write the float checkpoint to")
    parser.add_argument("--num-heads", type=int, default=None, help="attention heads (default: read from the graph)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty target folder")
    parser.add_argument("--compare", metavar="BEIR_DIR", default=None, help="BEIR folder whose queries and BM25 candidates are scored by both models")
    parser.add_argument("--split", default="test", help="qrels split of --compare (default: test)")
    parser.add_argument("--queries", type=int, default=20, help="queries to compare on (default: 20)")
    parser.add_argument("--candidates", type=int, default=10, help="BM25 candidates per query (default: 10)")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per pair in the comparison (default: 256)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the comparison (default: the runtimes' choice)")
    parser.add_argument("--benchmark", action="store_true", help="write the comparison to BENCHMARKS.md (section import-onnx)")
    parser.set_defaults(handler=run)


def _source_folder(source: str) -> Path:
    path = Path(source)
    if path.exists():
        return path
    from crossrank.models.resolve import resolve_model

    return Path(resolve_model(source).path)


def run(args: argparse.Namespace) -> int:
    from crossrank.training.onnx_import import compare_with_onnx, import_onnx

    folder = _source_folder(args.source)
    report = import_onnx(folder, args.target, num_heads=args.num_heads, overwrite=args.overwrite)
    sys.stdout.write(
        f"wrote {report.target}: {report.parameters} tensors, {len(report.dequantized)} de-quantized from int8 "
        f"({report.config['num_hidden_layers']} layers, hidden {report.config['hidden_size']}, "
        f"{report.config['num_attention_heads']} heads). The import is lossy.\n"
    )
    if args.compare is None:
        return 0
    from crossrank.training.data import DataSpec, load_data
    from crossrank.training.retrieval import Bm25Index

    data = load_data(DataSpec(format="beir", path=args.compare, split=args.split))
    qids = data.judged_queries()[: args.queries]
    hits = Bm25Index(data.corpus).search([data.queries[q] for q in qids], args.candidates)
    groups = [(data.queries[q], [data.corpus[d] for d, _ in row]) for q, row in zip(qids, hits) if row]
    graphs = []
    if folder.is_dir():
        from crossrank.models.config import ModelConfig

        config = ModelConfig.load(folder)
        original = config.extra.get("original_graph")
        if original and (folder / original).is_file():
            graphs.append((f"shipped graph `{original}` (per-tensor dynamic quantization)", folder / original))
        if config.onnx_file:
            label = "per-token rewrite `model.onnx`" if config.quantization == "per-token-int8" else f"`{config.onnx_file}`"
            graphs.append((label, folder / config.onnx_file))
    else:
        graphs.append((f"`{folder.name}`", folder))
    rows = []
    results = []
    for label, graph in graphs:
        comparison = compare_with_onnx(args.target, graph, groups, max_length=args.max_length, num_threads=args.threads)
        results.append({"graph": str(graph), **comparison.to_dict()})
        rows.append(
            f"| {label} | {comparison.pairs} | {comparison.max_abs_logit_diff:.4f} | {comparison.mean_abs_logit_diff:.4f} "
            f"| {comparison.mean_kendall_tau:.4f} | {comparison.top1_agreement:.3f} |"
        )
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    if args.benchmark:
        from crossrank.benchmarks import write_section

        body = (
            "## ONNX import: rebuilt float model vs the int8 ONNX graph\n\n"
            f"`crossrank import-onnx` rebuilt `{report.source}` as a float PyTorch checkpoint "
            f"({report.parameters} tensors, {len(report.dequantized)} de-quantized). Both models scored "
            f"{len(groups)} {Path(args.compare).name} `{args.split}` queries x BM25 top-{args.candidates} "
            f"(max_length {args.max_length}, one pair per ONNX call, CPU threads: {args.threads or 'runtime default'}). The import is **lossy**: the float model "
            "computes without activation quantization, so its logits differ from the graph's.\n\n"
            "| compared with | pairs | max abs logit diff | mean abs logit diff | mean Kendall tau per query | top-1 agreement |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows)
        )
        write_section("import-onnx", body)
    return 0
