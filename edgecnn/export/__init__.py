"""Tiers 1–2, the export side. Tier 1 (onnx, onnxruntime): ``graphs`` (what a file holds, its metadata),
``modes`` (the quantization registry), ``quantize`` (onnxruntime's quantizers), ``gates`` (what "agrees"
means), ``auto`` (the measured choice), ``report``, ``pipeline`` (build → pick → write), ``labelled`` (data
without torch) and ``requantize`` (``edgecnn quantize``). Tier 2 (torch): ``to_onnx``, ``parity`` and
``job`` (``edgecnn export``). Nothing is imported here: ``edgecnn.export.modes`` stays torch- and onnx-free."""
