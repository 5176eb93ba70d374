"""``edgecnn tune``: the fastest correct configuration of a model on this machine, measured here and cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgecnn.cli.options import config_from_options, config_options
from edgecnn.cli.output import print_json, show_decision
from edgecnn.cli.zoo import zoo_dir_option
from edgecnn.config import TuneConfig

__all__ = ["tune_command"]

TUNE_HELP = {
    "batch_size_hint": "The batch your app runs: configurations are timed at batch 1 and this one.",
    "budget": "Seconds for the whole tuning (default: every configuration, fully timed; a zoo net ~15 s on 2 cores).",
    "max_accuracy_drop": "Percentage points a quantized or reduced-precision configuration may lose vs the reference.",
    "backends": "Comma-separated: onnxruntime, plus openvino (default: every one installed).",
    "threads": "Pin the intra-op threads (as `edgecnn serve --threads N` runs them; default: try 1, 2, 4 … cores).",
}


@click.command("tune")
@click.argument("model", type=click.Path(dir_okay=False))
@config_options(TuneConfig, help=TUNE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the tuning (decision, table, cache entry) as JSON.")
@zoo_dir_option
def tune_command(model: str, as_json: bool, zoo_dir: str | None, **options: Any) -> None:
    """Measure every configuration that can run MODEL here — onnxruntime and OpenVINO, the precisions the file
    (for a zoo name, both variants) offers, thread counts, spinning — gate each as auto does on real test images,
    keep the fastest that passes, and cache the choice for this machine, where Predictor(backend='auto') and
    `edgecnn serve` read it. The model file is never written. MODEL may be zoo:NAME[:fp32|int8]."""
    from edgecnn.runtime.auto import auto_files, to_cache
    from edgecnn.runtime.metadata import read_metadata
    from edgecnn.runtime.session import open_session
    from edgecnn.runtime.tuning import tune
    from edgecnn.runtime.zoo import is_zoo_spec, resolve_zoo

    config = config_from_options(TuneConfig, options)
    path = resolve_zoo(model, zoo_dir) if is_zoo_spec(model) else Path(model)
    metadata = read_metadata(open_session(path), source=str(path))
    primary = str(metadata.quantization.get("mode", "none"))
    files = auto_files(model, zoo_dir, path=path, primary=primary)
    tuning = tune(
        files,
        primary,
        batch_size_hint=config.batch_size_hint,
        budget=config.budget,
        max_accuracy_drop=config.max_accuracy_drop,
        backends=config.backends,
        threads=config.threads,
        metadata=metadata,
    )
    written, why_not = to_cache(tuning, config.threads)
    if as_json:
        print_json({**tuning.to_dict(), "cache": None if written is None else str(written), "cache_error": why_not})
        return
    show_decision(tuning.decision, title=f"tune: configurations measured on this machine, gated on the {tuning.probe}")
    if tuning.left_out:
        click.echo("not measured: " + "; ".join(tuning.left_out))
    click.echo(f"in {tuning.elapsed_s:.1f} s on {tuning.decision.machine.summary()}")
    click.echo(f"cached in {written}" if written else f"edgecnn: warning: {why_not}")
