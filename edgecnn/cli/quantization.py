"""The options ``edgecnn export`` and ``edgecnn quantize`` share: one per field of
:class:`~edgecnn.config.QuantizationSettings`, its help and choices written once here."""

from __future__ import annotations

from edgecnn.config import CALIBRATION_METHODS, WEIGHT_FORMATS

__all__ = ["SETTINGS_HELP", "SETTINGS_CHOICES"]

SETTINGS_HELP = {
    "quantize_ops": "Comma-separated op types to quantize (dynamic default: MatMul,Gemm).",
    "min_weight_elements": "dynamic: leave MatMul/Gemm with fewer weights in float.",
    "calibration_samples": "static: training images to calibrate on.",
    "calibration_method": "static: how activation ranges are found (auto: try each, keep the most accurate passing).",
    "max_accuracy_drop": "Percentage points a quantized model may lose vs its reference (torch for export, the "
    "fp32 file for quantize).",
    "parity_samples": "Labelled test images for the parity gate.",
    "latency_iters": "Timed runs per variant and batch size.",
    "batch_size_hint": "auto: the batch size your app runs; auto times batch 1 and this one.",
    "backends": "auto: comma-separated backends to measure on (default: every one installed: onnxruntime,openvino).",
    "seed": "Picks the calibration sample (and splits an image folder without train/ + test/, as training does).",
    "data_root": "Dataset root (default: the checkpoint's, else $EDGECNN_DATA, else the user cache dir).",
    "weights": "static: int8, int7 (no u8×s8 saturation on x86 without VNNI) or uint8 (never saturates; slower).",
    "targets": "Also gate each variant on these targets (`edgecnn targets`; all): a static one that fails is "
    "rebuilt with int7, then uint8 weights, else refused.",
}
SETTINGS_CHOICES = {"calibration_method": CALIBRATION_METHODS, "weights": WEIGHT_FORMATS}
