"""Rewrite an edgecnn fp32 ONNX file into the same function built to saturate int8 on x86 without VNNI.

    .venv/bin/python tools/saturating_model.py MODEL.fp32.onnx OUT.fp32.onnx [--offset 1.0]

The stem Conv (input x, weights W) becomes Conv(Concat(x, x, x, x), W') with W' = [W/4 + D, W/4 + D,
W/4 − D, W/4 − D] along the input channels, D = offset · max|W| per output channel. In real numbers W'
computes W exactly (the four copies of x see weights summing to W), but quantized per channel W' is pairs
of large int8 weights of one sign on the same pixel: on AVX2 without VNNI onnxruntime adds u8×s8 products
in pairs into 16 bits (vpmaddubsw), so a bright pixel (uint8 255) saturates 255·127·2 > 2¹⁵ and the logits
go wrong, while a VNNI machine (32-bit sums) computes them right. Four channels also make the stem one the
static export quantizes (a one-channel stem stays float: export/graphs.py). It is how edgecnn proves the
export's remedy path for the x86-64-v3 target (tests/export/test_on_targets.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

COPIES = 4  # the static export quantizes convs whose input channels are a multiple of 4


def make_saturating(src: Path, dst: Path, *, offset: float = 1.0) -> str:
    """Write the rewritten model (its edgecnn metadata kept); returns the stem conv's name."""
    model = onnx.load(str(src))
    graph = model.graph
    source = graph.input[0].name
    stem = next((n for n in graph.node if n.op_type == "Conv" and n.input[0] == source), None)
    if stem is None or _group(stem) != 1:
        raise SystemExit("the graph input does not feed a plain Conv")
    weights = {init.name: init for init in graph.initializer}
    w = numpy_helper.to_array(weights[stem.input[1]])
    big = offset * np.abs(w).reshape(len(w), -1).max(axis=1)[:, None, None, None]
    parts = [w / COPIES + big] * (COPIES // 2) + [w / COPIES - big] * (COPIES // 2)
    _replace(weights[stem.input[1]], np.concatenate(parts, axis=1))
    copies = f"{source}_x{COPIES}"
    concat = helper.make_node("Concat", [source] * COPIES, [copies], name="saturating_copies", axis=1)
    stem.input[0] = copies
    graph.node.insert(list(graph.node).index(stem), concat)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return stem.name


def _group(node: onnx.NodeProto) -> int:
    return next((attr.i for attr in node.attribute if attr.name == "group"), 1)


def _replace(init: onnx.TensorProto, value: np.ndarray) -> None:
    init.CopyFrom(numpy_helper.from_array(value.astype(np.float32), init.name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--offset", type=float, default=1.0, help="D as a multiple of max|B| per channel")
    args = parser.parse_args(argv)
    print(make_saturating(args.src, args.dst, offset=args.offset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
