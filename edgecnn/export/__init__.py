"""Tiers 1–2, the export side, as the job reads. Tier 2 (torch): ``from_checkpoint`` (``edgecnn export`` and
``edgecnn verify``: a checkpoint → the fp32 graph and the torch reference) and ``to_onnx`` (torch → ONNX).
Tier 1 (onnx, onnxruntime): ``from_onnx`` (``edgecnn quantize``: an fp32 file is graph and reference),
``variants`` (the job both run: build → pick → gate → write), ``judge`` (the reference's logits, computed once,
and the one judge of every file), ``gates`` (the parity report), ``modes`` (the quantization registry),
``built`` (what a mode's builder gets and gives), ``sample`` (the calibration sample, read on first use),
``quantize`` (onnxruntime's quantizers), ``calibrate`` (static int8's calibration methods), ``graphs`` (what
a file holds, its metadata), ``on_targets`` (``--targets``: each variant on the targets' kernels, the
remedies for a static one that fails), ``report`` (the report card), ``costs`` (what one inference costs:
parameters, MACs, peak activation memory) ``mobile`` (``edgecnn bundle --target mobile``: the ORT format,
checked), ``web`` (``--target web``: a static page on onnxruntime-web; its files in ``web_page/``) and
``browser`` (a web bundle's self-test in headless Chromium). auto's measured choice and the gates are the
runtime's (:mod:`edgecnn.runtime.fastest`, :mod:`edgecnn.runtime.gates`), shared with ``edgecnn tune`` on the
device. Nothing is imported here: ``edgecnn.export.modes`` stays torch- and onnx-free for the CLI."""
