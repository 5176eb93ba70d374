"""What a quantization mode's builder is given and what it gives back: the one contract between the mode
registry (modes.py) and the builders (quantize.py, calibrate.py), below both so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: the mode registry imports this module at the CLI's start
    from edgecnn.config import QuantizationSettings
    from edgecnn.export.judge import Judge
    from edgecnn.export.sample import CalibrationSample

__all__ = ["Built", "BuildContext"]


@dataclass(frozen=True)
class Built:
    """What building a variant produced: its metadata settings and any advice for the user."""

    settings: dict[str, Any]
    warnings: tuple[str, ...] = ()
    unchanged: bool = False  # nothing qualified: the file is the fp32 graph under another name


@dataclass(frozen=True)
class BuildContext:
    """What a builder may use besides the fp32 file: the settings, the graph's input name, a labelled
    calibration sample read on first request (seeded, stratified: the graph's input and its manifest), and the
    judge of the gate the export must pass (for builders that choose among variants by it)."""

    settings: QuantizationSettings
    input_name: str
    calibration: CalibrationSample
    judge: Judge
