"""The model card is one object from training to the device: checkpoint → ONNX metadata → Predictor."""

from __future__ import annotations

import dataclasses

from edgecnn.config import ExportConfig
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.runtime import Predictor
from edgecnn.training.checkpoint import load_checkpoint


def test_card_round_trips_checkpoint_to_onnx_to_predictor(checkpoints, tmp_path, mnist):
    saved = load_checkpoint(checkpoints("fashion_bn"))
    card = saved.card
    assert card.arch == "fashion_bn" and card.class_names == mnist.class_names and card.input_shape == (1, 28, 28)
    assert card.dataset == "mnist" and card.normalization.mean == (0.1307,)
    assert 0.5 < card.metrics["test_accuracy"] <= 1 and card.metrics["epochs"] == 1
    assert card.lineage.data_checksum == mnist.checksum() and card.lineage.edgecnn_version
    for mode, baked in (("none", False), ("static", True)):  # the file's own facts vary; the card does not
        out = tmp_path / f"{mode}.onnx"
        export_checkpoint(
            checkpoints("fashion_bn"),
            out,
            ExportConfig(quantize=mode, bake_preprocessing=baked, parity_samples=1000, latency_iters=3),
        )
        predictor = Predictor(out)
        assert predictor.card == card  # unchanged, field for field
        assert dataclasses.asdict(predictor.card) == dataclasses.asdict(card)
        assert predictor.metadata.input.baked is baked and predictor.metadata.quantization["mode"] == mode
