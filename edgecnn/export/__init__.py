"""Tiers 1–2, the export side: ``to_onnx`` (torch → ONNX), ``graphs`` (what a file holds, its
metadata), ``modes`` (the quantization registry), ``quantize`` (onnxruntime's quantizers), ``gates`` and
``parity`` (what "agrees" means, and the check), ``auto`` (the measured choice), ``report`` and ``job``.
Nothing is imported here: ``edgecnn.export.modes`` stays importable without torch or onnx."""
