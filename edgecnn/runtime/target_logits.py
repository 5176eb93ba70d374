"""A model's logits on prepared inputs, in a process of its own on a target (``python -m`` this module).

    python -m edgecnn.runtime.target_logits MODEL INPUT.bin SHAPE_JSON DTYPE OUTPUT.f32 BATCH

The host prepares the inputs once, in the graph's input form (DTYPE float32, or uint8 for a graph that takes
raw pixels; little-endian, C order); the logits come back as float32: per-image
Python preprocessing under emulation is ~100× slower, so only the model runs here. onnxruntime's CPU
provider on one thread with every optimization a Predictor uses; ``BATCH`` images a run (the graph's own
batch when it is fixed). Prints one JSON line: onnxruntime's version, the machine and the output shape.
The Node runner (``web_logits.mjs``) speaks the same protocol. Imports numpy and onnxruntime only: it runs
on a device install.
"""

from __future__ import annotations

import json
import platform
import sys

import numpy as np

__all__ = ["main", "run_logits"]


def run_logits(model: str, feed: np.ndarray, batch: int) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    parts = [session.run(None, {name: feed[start : start + batch]})[0] for start in range(0, len(feed), batch)]
    return np.concatenate(parts).astype(np.float32, copy=False)


def main(argv: list[str] | None = None) -> int:
    model, source, shape_json, dtype, output, batch = argv if argv is not None else sys.argv[1:]
    shape = tuple(int(d) for d in json.loads(shape_json))
    feed = np.fromfile(source, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    logits = run_logits(model, feed, int(batch))
    logits.astype("<f4").tofile(output)
    import onnxruntime as ort

    print(
        json.dumps(
            {
                "runtime": "onnxruntime",
                "version": ort.__version__,
                "machine": platform.machine(),
                "shape": list(logits.shape),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
