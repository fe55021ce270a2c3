"""ONNX Runtime as a CPU lever for the cross-encoder: fp32 and dynamic int8 against the project's torch path.

Not a dependency of the project: this measures whether it should become one. It needs
`pip install onnxruntime onnx` on top of requirements-dev.txt.

The pairs are the windows the project's reranker cuts (as in `benchmarks.cross_encoder`, which can save
them with `--save-candidates`); every path reads the same token ids in the same length-sorted batches.
The reference is the project's fp32 torch path; "plain predict" is sentence-transformers' `predict` at
batch 32, the baseline of `benchmarks.cross_encoder`. Each path runs `--rounds` times, interleaved; the
best round is reported. Top-10 agreement: the share of each query's top 10 (documents ranked by their
best window) that the path keeps, against the fp32 torch path.

    python -m benchmarks.onnx_runtime --candidates runs/cand10.json
    python -m benchmarks.onnx_runtime --dataset ../shared/datasets/scifact --queries 10 --depth 20
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence

import numpy as np

from benchmarks.common import cross_encoder_spec, machine, machine_line, table
from benchmarks.cross_encoder import queries_and_candidates
from reranker.pairs import length_batches


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onnx_runtime", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="BEIR folder (queries are sampled from it) or a document folder")
    source.add_argument("--candidates", help="a file written by benchmarks.cross_encoder --save-candidates")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--model", default="auto", help="cross-encoder (default: the pipeline's offline default)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from reranker.cross_encoder import CrossEncoderReranker

    threads = torch.get_num_threads()  # plain predict's and onnxruntime's; the project path sets its own per call
    spec, _ = cross_encoder_spec(args.model)
    source, corpus, queries, _, candidates = queries_and_candidates(args)
    reranker = CrossEncoderReranker(spec, precision="fp32", cache=None, device="cpu")
    items, texts, owners = [], [], []
    for qid in queries:
        plan, pairs, _, pair_ids = reranker._plan(queries[qid], [corpus[d] for d in candidates[qid][: args.depth]])
        owners += [(qid, doc.id) for doc, windows, _ in plan for _ in windows]
        items += pair_ids
        texts += pairs
    template = reranker.template
    specials = reranker.tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(q) + len(d) + specials for q, d in items]

    def features(batch: list[int]) -> dict[str, np.ndarray]:
        built = template.batch([items[i] for i in batch])
        return {k: v.numpy().astype(np.int64) for k, v in built.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    hf = reranker.model[0].auto_model
    folder = tempfile.mkdtemp(prefix="rerank-lens-onnx-")
    fp32_file = os.path.join(folder, "model.onnx")
    example = features(length_batches(lengths, 4)[0])
    start = time.perf_counter()
    hf.set_attn_implementation("eager")  # the exporter traces eager attention; runtime fuses it again
    torch.onnx.export(
        hf,
        (),
        fp32_file,
        kwargs={k: torch.from_numpy(v) for k, v in example.items()},
        input_names=list(example),
        output_names=["logits"],
        dynamic_axes={k: {0: "batch", 1: "tokens"} for k in example} | {"logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    hf.set_attn_implementation("sdpa")
    export_s = time.perf_counter() - start
    int8 = {
        "int8 dynamic, s8 weights per channel": dict(weight_type=QuantType.QInt8, per_channel=True),
        "int8 dynamic, s8 weights per channel, 7-bit": dict(weight_type=QuantType.QInt8, per_channel=True, reduce_range=True),
        "int8 dynamic, u8 weights per channel": dict(weight_type=QuantType.QUInt8, per_channel=True),
        # The feed-forward output layers read GELU activations, whose outliers one scale per tensor holds worst.
        "int8 dynamic, s8 per channel, feed-forward outputs fp32": dict(
            weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=feed_forward_outputs(fp32_file)
        ),
    }
    files = {"fp32": fp32_file}
    for i, (name, options) in enumerate(int8.items()):
        files[name] = os.path.join(folder, f"int8-{i}.onnx")
        quantize_dynamic(fp32_file, files[name], **options)

    def onnx_path(file: str, batch_size: int) -> Callable[[], np.ndarray]:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])
        inputs = {i.name for i in session.get_inputs()}

        def run() -> np.ndarray:
            out = np.empty(len(items), np.float32)
            for batch in length_batches(lengths, batch_size):
                out[batch] = session.run(None, {k: v for k, v in features(batch).items() if k in inputs})[0][:, 0]
            return out

        return run

    def plain_predict() -> np.ndarray:  # the baseline of benchmarks.cross_encoder: the windows' texts, batch 32
        torch.set_num_threads(threads)
        return reranker.model.predict(texts, batch_size=32, activation_fn=torch.nn.Identity(), show_progress_bar=False)

    paths: dict[str, Callable[[], np.ndarray]] = {
        "sentence-transformers predict, fp32, batch 32": plain_predict,
        "project torch path, fp32": lambda: reranker.model_scores(None, items, precision="fp32"),
        "onnxruntime fp32, batch 8": onnx_path(fp32_file, 8),
        "onnxruntime fp32, batch 32": onnx_path(fp32_file, 32),
        **{f"onnxruntime {name}, batch 8": onnx_path(file, 8) for name, file in files.items() if name != "fp32"},
    }
    baseline, reference = next(iter(paths)), "project torch path, fp32"
    scores = {name: np.asarray(run(), dtype=np.float32) for name, run in paths.items()}  # warm-up, and the scores
    best = dict.fromkeys(paths, float("inf"))
    for round_ in range(args.rounds):
        for name in paths if round_ % 2 == 0 else reversed(paths):
            start = time.perf_counter()
            paths[name]()
            best[name] = min(best[name], time.perf_counter() - start)

    def top10(values: np.ndarray) -> dict[str, list[str]]:
        by_query: dict[str, dict[str, float]] = {}
        for (qid, doc), value in zip(owners, values, strict=True):
            docs = by_query.setdefault(qid, {})
            docs[doc] = max(docs.get(doc, -np.inf), float(value))
        return {q: sorted(d, key=lambda k, d=d: -d[k])[:10] for q, d in by_query.items()}

    ref_top = top10(scores[reference])
    rows = []
    for name in paths:
        top = top10(scores[name])
        agreement = float(np.mean([len(set(top[q]) & set(ref_top[q])) / len(ref_top[q]) for q in ref_top]))
        rows.append(
            {
                "path": name,
                "pairs_per_s": len(items) / best[name],
                "speedup_vs_predict": best[baseline] / best[name],
                "top10_agreement": agreement,
                "max_abs_logit_diff": float(np.abs(scores[name] - scores[reference]).max()),
            }
        )
    info = machine()
    result = {"dataset": source, "model": spec, "pairs": len(items), "export_s": export_s, "rows": rows, "machine": info}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(machine_line(info))
    print(f"dataset {source}: {len(queries)} queries x top {args.depth} = {len(items)} pairs; model {spec}")
    print(f"export to ONNX: {export_s:.1f} s; best of {args.rounds} interleaved rounds; agreement against the {reference}")
    headers = ["path", "pairs/s", "speedup vs predict", "top-10 agreement", "max |logit diff|"]
    keys = ("path", "pairs_per_s", "speedup_vs_predict", "top10_agreement", "max_abs_logit_diff")
    print(table(headers, [[r[k] for k in keys] for r in rows]))
    return 0


def feed_forward_outputs(onnx_file: str) -> list[str]:
    """The MatMul nodes of each layer's feed-forward output projection (BERT layout: layer.N/output/dense)."""
    import onnx

    return [n.name for n in onnx.load(onnx_file).graph.node if n.op_type == "MatMul" and "/output/dense/" in n.name
            and "/attention/" not in n.name]


if __name__ == "__main__":
    raise SystemExit(main())
