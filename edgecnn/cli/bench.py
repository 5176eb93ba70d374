"""``edgecnn bench``."""

from __future__ import annotations

import sys
from typing import Any

import click

from edgecnn.cli.options import config_from_options, config_options
from edgecnn.cli.output import print_json
from edgecnn.cli.requires import require
from edgecnn.cli.stop import stoppable
from edgecnn.cli.zoo import resolve_model, zoo_dir_option
from edgecnn.config import PROVIDERS, BenchConfig
from edgecnn.files import check_writable, write_json

__all__ = ["bench"]

BENCH_HELP = {
    "provider": "Execution provider, chosen as the Predictor does.",
    "backends": "Comma-separated: each model on each of onnxruntime, openvino (pip install edgecnn[openvino]).",
    "batch_sizes": "Comma-separated batch sizes.",
    "threads": "Comma-separated intra-op thread counts: each model at each, in one run (default: the Predictor's).",
    "warmup": "Untimed runs per model and batch size.",
    "iters": "Timed runs per model and batch size.",
    "duration": "Seconds per batch size instead of --iters.",
    "cold_runs": "Fresh processes per model for cold start (0: skip).",
    "allow_fallback": "With --provider cuda and no working CUDA: warn and run on the CPU instead of failing.",
    "shape": "Input sizes after the batch axis, for a model whose input has other symbolic sizes (e.g. 3,224,224).",
}


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@config_options(BenchConfig, help=BENCH_HELP, choices={"provider": PROVIDERS})
@click.option("--torch", "torch_checkpoint", default=None, help="Add torch eager from this checkpoint as a row.")
@click.option("--json", "json_path", default=None, help="Write every figure as JSON to PATH, or '-' for stdout only.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False), help="Write a PNG chart.")
@zoo_dir_option
def bench(
    models: tuple[str, ...],
    torch_checkpoint: str | None,
    json_path: str | None,
    plot_path: str | None,
    zoo_dir: str | None,
    **options: Any,
) -> None:
    """Measure MODEL.onnx files (and torch eager) round-robin: percentiles, throughput, start-up, memory.
    A MODEL may be a zoo model, zoo:NAME[:fp32|int8] (`edgecnn zoo` lists them)."""
    models = tuple(resolve_model(model, zoo_dir) for model in models)
    if json_path and json_path != "-":  # checked before minutes of measuring, not after
        check_writable(json_path, what="--json")
    if plot_path:
        check_writable(plot_path, what="--plot")
    from edgecnn.bench import format_report, run_bench

    config = config_from_options(BenchConfig, options)
    if plot_path:
        require("plot", "edgecnn bench --plot")
    if torch_checkpoint:
        require("train", "edgecnn bench --torch")
    log = (lambda line: click.echo(f"edgecnn: {line}", err=True)) if sys.stderr.isatty() else (lambda _: None)
    with stoppable() as on_ctrl_c:  # a model that never finishes still stops on Ctrl-C
        result = run_bench(list(models), config, torch_checkpoint=torch_checkpoint, log=log, on_stop=on_ctrl_c)
    if plot_path:
        from edgecnn.plots import plot_latency

        plot_latency(result.to_dict(), plot_path)
    if json_path == "-":
        print_json(result.to_dict())
        return
    if json_path:
        write_json(json_path, result.to_dict())
    click.echo(format_report(result))
