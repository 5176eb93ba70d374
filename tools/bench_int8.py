#!/usr/bin/env python
"""Why does onnxruntime's CPU int8 beat fp32 by little on some nets? Every quantization format, one run.

For each net, builds from ``models/NAME/NAME.fp32.onnx`` the static int8 variants below with
``onnxruntime.quantization`` (MinMax, on 500 seeded training images), then measures fp32 and every
variant interleaved in one run (blocks of 10, sessions with ``--threads`` intra-op threads that do not
spin): p50 at batch 1 and 64, the ratio to fp32, and top-1 accuracy on the full 10,000-image test set.
For the ``--profile`` nets it profiles fp32, ours, and the fastest and slowest variant at batch 64 (onnxruntime's
profiler): milliseconds per node and op type in the optimized graph, and the float ops left in it.

    EDGECNN_DATA=/work/shared/datasets .venv/bin/python tools/bench_int8.py \\
        [--nets keras_same,fashion_bn] [--threads 1] [--profile keras_same,fashion_bn] [--markdown F]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgecnn.data.builtin import read_builtin
from edgecnn.export.graphs import prepare_shallow_convs
from edgecnn.export.quantize import quiet_quantizer_logs
from edgecnn.runtime.backends import onnxruntime_engine
from edgecnn.runtime.timing import measure_interleaved, summarize

NETS = ("mnist_cnn3", "convnet5", "keras_conv2", "fashion_bn", "keras_same", "keras_valid")
ROOT = Path(__file__).resolve().parent.parent
HEAD = [
    "| net | variant | b1 p50 ms | b1 ×fp32 | b64 p50 ms | b64 ×fp32 | accuracy | Δ pp |",
    "|---|---|" + "---:|" * 6,
]
FLOAT_OPS = {"Conv", "FusedConv", "MaxPool", "Gemm", "FusedGemm", "MatMul", "Relu", "ReorderInput", "ReorderOutput"}


@dataclass(frozen=True)
class Variant:
    """One way to build and run an int8 file from the fp32 graph."""

    name: str
    operator: bool = False  # QuantFormat.QOperator (QLinearConv in the file) instead of QDQ
    signed: bool = False  # int8 activations (S8S8) instead of uint8 (U8S8)
    per_channel: bool = True
    reduce_range: bool = False
    pre: bool = True  # quant_pre_process first, as edgecnn does
    extra: dict[str, Any] = field(default_factory=dict)
    session: dict[str, str] = field(default_factory=dict)
    shallow: str = ""  # convs with input channels % 4 != 0: "" as is, "float" keep fp32, "pad" pad to 4,
    #   "edgecnn": edgecnn.export.graphs.prepare_shallow_convs (what `--quantize static` does)


NO_PROP = {"optimization.disable_specified_optimizers": "QDQPropagationTransformer"}
VARIANTS = (
    Variant("qdq_u8s8_pc (edgecnn before)"),
    Variant("edgecnn static now (float stem, Relu after MaxPool; else pad4)", shallow="edgecnn"),
    Variant("qdq_u8s8_pc no-preprocess", pre=False),
    Variant("qdq_s8s8_pc", signed=True),
    Variant("qdq_s8s8_pc qdqisint8allowed=1", signed=True, session={"session.qdqisint8allowed": "1"}),
    Variant("qdq_u8s8_per-tensor", per_channel=False),
    Variant("qdq_u8s8_pc reduce_range", reduce_range=True),
    Variant("qdq_u8s8_pc ActivationSymmetric", extra={"ActivationSymmetric": True}),
    Variant("qdq_u8s8_pc KeepRemovableActivations", extra={"QDQKeepRemovableActivations": True}),
    Variant("qdq_u8s8_pc AddQDQPairToWeight", extra={"AddQDQPairToWeight": True}),
    Variant("qop_u8s8_pc", operator=True),
    Variant("qop_s8s8_pc", operator=True, signed=True),
    Variant("qdq_u8s8_pc no-QDQPropagation", session=NO_PROP),
    Variant("qdq_u8s8_pc first-conv-pad4", shallow="pad"),
    Variant("qdq_u8s8_pc first-conv-fp32", shallow="float"),
    Variant("qdq_u8s8_pc first-conv-fp32 no-QDQPropagation", shallow="float", session=NO_PROP),
)


class Reader:
    """onnxruntime's CalibrationDataReader protocol over an array, 50 images a batch."""

    def __init__(self, name: str, data: np.ndarray) -> None:
        self.get_next = iter([{name: data[i : i + 50]} for i in range(0, len(data), 50)] + [None]).__next__


def load_data(model: onnx.ModelProto, samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalized calibration sample (seeded, from the training set), test images and labels."""
    meta = {p.key: p.value for p in model.metadata_props}
    norm = json.loads(meta["edgecnn.normalization"])
    train, test = (read_builtin(meta["edgecnn.dataset"], split) for split in ("train", "test"))
    mean = np.asarray(norm["mean"], np.float32)[:, None, None]
    std = np.asarray(norm["std"], np.float32)[:, None, None]
    scale = lambda x: ((x.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)  # noqa: E731
    pick = np.random.default_rng(0).choice(len(train.images), samples, replace=False)
    return scale(train.images[np.sort(pick)]), scale(test.images), test.labels


def shallow_convs(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Conv nodes with input channels not a multiple of 4: onnxruntime's x86 MlasConvSym (indirect
    conv with fused requantization) refuses them and QLinearConv falls back to im2col + GEMM."""
    weights = {init.name: init for init in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "Conv" and weights[n.input[1]].dims[1] % 4 != 0]


def pad_shallow(model: onnx.ModelProto) -> onnx.ModelProto:
    """Zero-pad the input channels of shallow convs to a multiple of 4 (a Pad before the conv, zero
    weights for the new channels): the same function in fp32, and MlasConvSym takes the conv."""
    weights = {init.name: init for init in model.graph.initializer}
    for node in shallow_convs(model):
        w = numpy_helper.to_array(weights[node.input[1]])
        extra = -w.shape[1] % 4
        w = np.pad(w, ((0, 0), (0, extra)) + ((0, 0),) * (w.ndim - 2))
        weights[node.input[1]].CopyFrom(numpy_helper.from_array(w, node.input[1]))
        pads = [0] * (2 * w.ndim)
        pads[w.ndim + 1] = extra
        name = node.name + "_cin_pad"
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(pads, np.int64), name + "_pads"))
        model.graph.node.insert(0, helper.make_node("Pad", [node.input[0], name + "_pads"], [name], name=name))
        node.input[0] = name
    return model


def build(variant: Variant, fp32: Path, calib: np.ndarray, tmp: Path) -> Path:
    """The variant's int8 file, quantized from ``fp32`` on ``calib``."""
    src = fp32
    keep_float: list[str] = []
    if variant.shallow == "pad":
        src = tmp / "padded.onnx"
        onnx.save(pad_shallow(onnx.load(str(fp32))), str(src))
    elif variant.shallow == "edgecnn":
        src, ready = tmp / "ready.onnx", onnx.load(str(fp32))
        keep_float = prepare_shallow_convs(ready)[1]
        onnx.save(ready, str(src))
    if variant.pre:
        pre = tmp / "pre.onnx"
        quant_pre_process(str(src), str(pre))
        src = pre
    model = onnx.load(str(src))
    # the Relu/MaxPool after an excluded conv stay float too: their input is not quantized
    exclude = [n.name for n in shallow_convs(model)] if variant.shallow == "float" else []
    exclude += [n.name for n in model.graph.node if n.op_type == "Conv" and n.output[0] in keep_float]
    dst = tmp / "int8.onnx"
    with quiet_quantizer_logs():
        quantize_static(
            str(src),
            str(dst),
            Reader(model.graph.input[0].name, calib),
            quant_format=QuantFormat.QOperator if variant.operator else QuantFormat.QDQ,
            per_channel=variant.per_channel,
            reduce_range=variant.reduce_range,
            activation_type=QuantType.QInt8 if variant.signed else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            extra_options=dict(variant.extra),
        )
    return dst


def open_session(path: Path, threads: int, config: dict[str, str], **options: Any) -> ort.InferenceSession:
    """Full optimization, ``threads`` intra-op threads that do not spin, the variant's config entries."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    for key, value in {"session.intra_op.allow_spinning": "0", **config}.items():
        so.add_session_config_entry(key, value)
    for key, value in options.items():
        setattr(so, key, value)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def accuracy(session: ort.InferenceSession, images: np.ndarray, labels: np.ndarray) -> float:
    name = session.get_inputs()[0].name
    logits = [session.run(None, {name: images[i : i + 500]})[0] for i in range(0, len(images), 500)]
    return float((np.concatenate(logits).argmax(1) == labels).mean())


def bench_net(net: str, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Path], np.ndarray]:
    """One row per variant (fp32 first): p50 at batch 1 and 64, ratio to fp32, accuracy; the files;
    the batch of 64 test images timed."""
    fp32 = ROOT / "models" / net / f"{net}.fp32.onnx"
    calib, test_x, test_y = load_data(onnx.load(str(fp32)), args.calibration)
    paths: dict[str, Path] = {"fp32": fp32}
    configs: dict[str, dict[str, str]] = {"fp32": {}}
    for variant in VARIANTS:
        tmp = Path(tempfile.mkdtemp(prefix="bench-int8-", dir=args.tmp))
        paths[variant.name], configs[variant.name] = build(variant, fp32, calib, tmp), variant.session
    sessions = {name: open_session(path, args.threads, configs[name]) for name, path in paths.items()}
    rows = [
        {"net": net, "variant": name, "threads": args.threads, "acc": accuracy(s, test_x, test_y)}
        for name, s in sessions.items()
    ]
    runs = {name: onnxruntime_engine(session, "cpu", None).run for name, session in sessions.items()}
    for batch, iters in ((1, args.iters * 3), (64, args.iters)):
        samples = measure_interleaved(runs, dict.fromkeys(runs, np.ascontiguousarray(test_x[:batch])), iters=iters)
        for row in rows:
            row[f"p50_b{batch}"] = summarize(samples[row["variant"]])["p50"]
    for row in rows:
        for batch in (1, 64):
            row[f"ratio_b{batch}"] = row[f"p50_b{batch}"] / rows[0][f"p50_b{batch}"]
        row["dacc_pp"] = 100 * (row["acc"] - rows[0]["acc"])
    return rows, paths, np.ascontiguousarray(test_x[:64])


def profile(path: Path, config: dict[str, str], feed: np.ndarray, threads: int, tmp: Path) -> dict[str, Any]:
    """onnxruntime's profile of ``path`` at ``feed``'s batch: ms per node (mean of 30 runs), the
    optimized graph's op sequence, the float compute ops and the Q/DQ nodes left in it."""
    optimized = tmp / "optimized.onnx"
    files = {"profile_file_prefix": str(tmp / "profile"), "optimized_model_filepath": str(optimized)}
    session = open_session(path, threads, config, enable_profiling=True, log_severity_level=3, **files)
    name = session.get_inputs()[0].name
    for _ in range(40):
        session.run(None, {name: feed})
    events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e["dur"] for e in events if e.get("name") == "model_run"][10:]
    nodes: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            nodes[(e["args"]["op_name"], e["name"].removesuffix("_kernel_time"))].append(e["dur"] / 1e3)
    graph = [
        (n.domain.rsplit(".", 1)[-1] + ":" if n.domain else "") + n.op_type
        for n in onnx.load(str(optimized)).graph.node
    ]
    return {
        "run_ms": float(np.median(runs)) / 1e3,
        "nodes": {key: float(np.mean(times[10:])) for key, times in nodes.items()},
        "graph": graph,
        "float_ops": [op for op in graph if op.split(":")[-1] in FLOAT_OPS],
        "qdq_left": sum(op in ("QuantizeLinear", "DequantizeLinear") for op in graph),
    }


def profile_net(net: str, rows: list[dict[str, Any]], paths: dict[str, Path], feed: np.ndarray, tmp: str) -> list[str]:
    """Markdown lines: the profiles of fp32, ours, and the fastest and slowest int8 variant at ``feed``."""
    int8 = sorted(rows[1:], key=lambda r: r["p50_b64"])
    configs = {v.name: v.session for v in VARIANTS} | {"fp32": {}}
    threads = rows[0]["threads"]
    lines = [f"\n### Profile: {net}, batch {len(feed)}, {threads} thread(s)\n"]
    for name in dict.fromkeys(["fp32", VARIANTS[0].name, int8[0]["variant"], int8[-1]["variant"]]):
        prof = profile(paths[name], configs[name], feed, threads, Path(tempfile.mkdtemp(dir=tmp)))
        by_type: dict[str, float] = collections.defaultdict(float)
        for (op, _), ms in prof["nodes"].items():
            by_type[op] += ms
        lines.append(f"**{name}**: run {prof['run_ms']:.3f} ms; optimized graph: {' → '.join(prof['graph'])}")
        lines.append(f"float compute ops left: {prof['float_ops'] or 'none'}; Q/DQ nodes left: {prof['qdq_left']}\n")
        types = ", ".join(f"{op} {ms:.3f}" for op, ms in sorted(by_type.items(), key=lambda t: -t[1]))
        lines.append(f"- per op type (ms): {types}")
        top = sorted(prof["nodes"].items(), key=lambda t: -t[1])
        lines.append("- per node (ms): " + ", ".join(f"{op} `{node}` {ms:.3f}" for (op, node), ms in top) + "\n")
    return lines


def table(rows: list[dict[str, Any]]) -> list[str]:
    return HEAD + [
        f"| {r['net']} | {r['variant']} | {r['p50_b1']:.3f} | {r['ratio_b1']:.2f} | {r['p50_b64']:.3f} "
        f"| {r['ratio_b64']:.2f} | {r['acc']:.2%} | {r['dacc_pp']:+.2f} |"
        for r in rows
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default=",".join(NETS), help="comma-separated nets under models/")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per session")
    parser.add_argument("--iters", type=int, default=100, help="timed runs per variant at batch 64 (3× at batch 1)")
    parser.add_argument("--calibration", type=int, default=500, help="calibration images")
    parser.add_argument("--profile", default="keras_same,fashion_bn", help="nets to profile ('' for none)")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    os.environ.setdefault("EDGECNN_DATA", "/work/shared/datasets")
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        args.tmp = tmp
        text = report(args)
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


def report(args: argparse.Namespace) -> str:
    """The markdown report: the table of every net's variants, then the profiles."""
    cpu = next((ln.split(":")[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "name" in ln), "")
    out = [
        f"Command: `{' '.join(['tools/bench_int8.py', *sys.argv[1:]])}`",
        f"Machine: {cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, onnxruntime "
        f"{ort.__version__}, {args.threads} intra-op thread(s), no spinning; p50 of {args.iters * 3} (b1) / "
        f"{args.iters} (b64) runs interleaved in blocks of 10; MinMax calibration on {args.calibration} images.\n",
        *table([]),
    ]
    profiles: list[str] = []
    for net in args.nets.split(","):
        rows, paths, feed = bench_net(net, args)
        out += table(rows)[2:]
        print("\n".join(table(rows)[2:]), flush=True)
        if net in args.profile.split(","):
            profiles += profile_net(net, rows, paths, feed, args.tmp)
    return "\n".join(out + profiles) + "\n"


if __name__ == "__main__":
    sys.exit(main())
