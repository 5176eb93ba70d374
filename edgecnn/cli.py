"""The only module that knows click: parse → config → one library call → print.

Tier 0 at import time: commands import the torch-side modules inside their bodies, so
``edgecnn predict`` and ``edgecnn bench`` start without torch. Every :class:`EdgeCNNError` becomes one
line on stderr and exit 1; click's usage errors exit 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from edgecnn import __version__
from edgecnn.config import CALIBRATION_METHODS, DEVICES, OPTIMIZERS, QUANT_MODES, BenchConfig, ExportConfig, TrainConfig
from edgecnn.errors import EdgeCNNError

__all__ = ["main"]


class _Failure(click.ClickException):
    """An expected failure: one line on stderr, exit 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"edgecnn: error: {self.message}", err=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeCNNError as exc:
            raise _Failure(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="edgecnn", message="%(prog)s %(version)s")
def main() -> None:
    """edgecnn: small image CNNs from training to the edge."""


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def archs(as_json: bool) -> None:
    """List the registered architectures (parameters for 1×28×28 input, 10 classes)."""
    from edgecnn.architectures import count_parameters, create, get_arch, list_archs

    rows = [{"name": name, "parameters": count_parameters(create(name)), "input_shape": [1, 28, 28],
             "summary": get_arch(name).summary} for name in list_archs()]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']:<12} {row['parameters']:>10,}  1×28×28  {row['summary']}")


_TRAIN_FIELDS = ("arch", "dataset", "epochs", "batch_size", "lr", "optimizer", "seed", "limit_train",
                 "device", "data_root", "image_size")


@main.command()
@click.option("--arch", default=TrainConfig.arch, show_default=True, help="Registered architecture (see `edgecnn archs`).")
@click.option("--dataset", default=TrainConfig.dataset, show_default=True, help="mnist, fashion-mnist, or a folder with one sub-folder of images per class.")
@click.option("--epochs", type=int, default=TrainConfig.epochs, show_default=True)
@click.option("--batch-size", type=int, default=TrainConfig.batch_size, show_default=True)
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=TrainConfig.optimizer, show_default=True)
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run directory for checkpoint.pt, metrics.json and plots.")
@click.option("--limit-train", type=int, default=None, help="Train on a seeded random subset of N images.")
@click.option("--image-size", type=int, default=TrainConfig.image_size, show_default=True, help="Input side for image folders.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--device", type=click.Choice(DEVICES), default=TrainConfig.device, show_default=True)
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Dataset root (default: $EDGECNN_DATA, else the user cache dir).")
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as JSON on stdout.")
@click.pass_context
def train(ctx: click.Context, out_dir: str, resume: bool, as_json: bool, **options: Any) -> None:
    """Train a registered net and write checkpoint.pt, metrics.json, curves.png and confusion.png."""
    from edgecnn import train as training

    if resume:  # the saved run's settings, changed only where the user said so on this command line
        given = {k: v for k, v in options.items()
                 if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
        config = training.resume_config(out_dir, given)
    else:
        config = TrainConfig(**{k: options[k] for k in _TRAIN_FIELDS})
    try:
        result = training.fit(config, out_dir, resume=resume, progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        click.echo(f"edgecnn: interrupted; the last finished epoch is saved in {out_dir}; "
                   "continue with --resume", err=True)
        ctx.exit(130)
    if as_json:
        _print_json(result.summary())
        return
    last = result.epochs[-1]
    click.echo(f"{config.arch} on {config.dataset}: test accuracy {last['test_accuracy']:.2%} after "
               f"{last['epoch']} epoch(s), {last['samples_per_s']:,.0f} samples/s; wrote {out_dir}/"
               "{checkpoint.pt,metrics.json,curves.png,confusion.png}")


def _ops(value: str | None) -> tuple[str, ...] | None:
    return tuple(op.strip() for op in value.split(",") if op.strip()) if value else None


@main.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write MODEL.onnx (and MODEL.report.json).")
@click.option("--quantize", type=click.Choice(QUANT_MODES), default=ExportConfig.quantize, show_default=True)
@click.option("--quantize-ops", default=None, help="Comma-separated op types to quantize (dynamic default: MatMul,Gemm).")
@click.option("--min-weight-elements", type=int, default=ExportConfig.min_weight_elements, show_default=True, help="dynamic: leave MatMul/Gemm with fewer weights in float.")
@click.option("--opset", type=int, default=ExportConfig.opset, show_default=True)
@click.option("--calibration-samples", type=int, default=ExportConfig.calibration_samples, show_default=True)
@click.option("--calibration-method", type=click.Choice(CALIBRATION_METHODS), default=ExportConfig.calibration_method, show_default=True)
@click.option("--max-accuracy-drop", type=float, default=ExportConfig.max_accuracy_drop, show_default=True, help="Percentage points a quantized model may lose vs torch.")
@click.option("--parity-samples", type=int, default=ExportConfig.parity_samples, show_default=True)
@click.option("--bake-preprocessing", is_flag=True, help="The graph takes raw uint8 pixels (N×H×W or N×H×W×C).")
@click.option("--latency-iters", type=int, default=ExportConfig.latency_iters, show_default=True)
@click.option("--seed", type=int, default=ExportConfig.seed, show_default=True)
@click.option("--data-root", type=click.Path(file_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the report card as JSON on stdout.")
def export_command(checkpoint: str, out: str, quantize_ops: str | None, as_json: bool, **options: Any) -> None:
    """Export CHECKPOINT to ONNX, quantize it, and prove parity with torch on the test set."""
    import warnings

    from edgecnn.exportjob import export_checkpoint

    config = ExportConfig(quantize_ops=_ops(quantize_ops), **options)
    with warnings.catch_warnings(record=True):  # shown below as our own one-line warnings instead
        warnings.simplefilter("always")
        report = export_checkpoint(checkpoint, out, config)
    for message in report["warnings"]:
        click.echo(f"edgecnn: warning: {message}", err=True)
    if as_json:
        _print_json(report)
        return
    _print_export(report)


def _print_export(report: dict[str, Any]) -> None:
    auto = report["settings"].get("auto")
    if auto:
        click.echo("auto: candidates measured on this machine (p50 ms)")
        click.echo(f"  {'candidate':<9} {'accuracy':>9} {'drop pp':>8} {'batch 1':>9} {'batch 32':>9} {'rel.':>6} {'size':>10}")
        for row in auto["table"]:
            mark = "*" if row["candidate"] == auto["chosen"] else (" " if row["eligible"] else "x")
            click.echo(f"{mark} {row['candidate']:<9} {row['accuracy']:>9.2%} {row['drop_pp']:>8.2f} "
                       f"{row['latency_ms']['1']:>9.4f} {row['latency_ms']['32']:>9.4f} "
                       f"{row['relative_time']:>6.2f} {row['size_bytes']:>10,}")
    sizes, acc, parity = report["size_bytes"], report["accuracy"], report["parity"]
    quantized = ", ".join(f"{v['quantized']}/{v['of']} {op}" for op, v in report["quantized_ops"].items())
    click.echo(f"exported {report['model']}: {report['mode']} ({quantized} quantized), "
               f"{sizes['exported']:,} bytes = {report['size_ratio']:.2f}× fp32")
    click.echo(f"parity on {parity['samples']:,} test images, batches 1/2/7/64: top-1 agreement "
               f"{parity['top1_agreement']:.2%}, max |Δlogit| {parity['max_abs']:.3g}; accuracy "
               f"{acc['exported']:.2%} vs torch {acc['fp32']:.2%} ({acc['delta_pp']:+.2f} pp)")
    lat = report["latency_ms_p50"]
    if report["mode"] == "none":
        click.echo("latency p50: " + ", ".join(f"batch {b} {ms:.4f} ms" for b, ms in lat["fp32"].items()))
        return
    click.echo("latency p50: " + ", ".join(
        f"batch {b} {lat['exported'][b]:.4f} ms vs fp32 {lat['fp32'][b]:.4f} ms (speed-up {report['speedup'][b]:.2f}×)"
        for b in lat["fp32"]))


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=True))
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--parity-samples", type=int, default=ExportConfig.parity_samples, show_default=True)
@click.option("--max-accuracy-drop", type=float, default=None, help="Override the budget stored in the model.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True)
def verify(checkpoint: str, model: str, parity_samples: int, max_accuracy_drop: float | None,
           data_root: str | None, as_json: bool) -> None:
    """Check MODEL.onnx against CHECKPOINT on the real test set; exit 1 if a parity gate fails."""
    from edgecnn.exportjob import verify_export

    report = verify_export(checkpoint, model, parity_samples=parity_samples,
                           max_accuracy_drop=max_accuracy_drop, data_root=data_root)
    if as_json:
        _print_json(report)
        return
    click.echo(f"parity passed on {report['samples']:,} test images: top-1 agreement {report['top1_agreement']:.2%}, "
               f"max |Δlogit| {report['max_abs']:.3g}, accuracy {report['onnx_accuracy']:.2%} vs torch "
               f"{report['torch_accuracy']:.2%} ({report['delta_accuracy_pp']:+.2f} pp)")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--top-k", type=int, default=1, show_default=True)
@click.option("--provider", type=click.Choice(("auto", "cpu", "cuda")), default="auto", show_default=True)
@click.option("--no-invert", is_flag=True, help="Never invert light-background images for MNIST-style models.")
@click.option("--json", "as_json", is_flag=True, help="One JSON list on stdout: a result or an error per file.")
def predict(model: str, images: tuple[str, ...], top_k: int, provider: str, no_invert: bool, as_json: bool) -> None:
    """Classify IMAGE files (PNG, JPEG, BMP) with MODEL.onnx. A bad file gets its own error line; the
    rest still run; the exit status is 1 if any failed."""
    from edgecnn.errors import ImageError
    from edgecnn.preprocess import load_image
    from edgecnn.runtime import Predictor

    predictor = Predictor(model, provider=provider)
    results: dict[str, Any] = {}
    loaded = {}
    for path in images:
        try:
            loaded[path] = load_image(path)
        except ImageError as exc:
            results[path] = {"file": path, "error": str(exc)}
    if loaded:
        for path, result in zip(loaded, predictor.predict(list(loaded.values()), top_k, invert=not no_invert)):
            results[path] = {"file": path, **result.to_dict()}
    ordered = [results[path] for path in images]
    for result in ordered:
        if "error" in result:
            click.echo(f"edgecnn: error: {result['error']}", err=True)
        elif not as_json:
            others = ", ".join(f"{t['label']} {t['probability']:.1%}" for t in result["top_k"][1:])
            click.echo(f"{result['file']}: {result['label']} ({result['probability']:.1%})"
                       + (f"; then {others}" if others else ""))
    if as_json:
        _print_json(ordered)
    if any("error" in r for r in ordered):
        sys.exit(1)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def info(model: str, as_json: bool) -> None:
    """Show what MODEL.onnx carries: arch, classes, input, normalization, quantization, parity."""
    import dataclasses
    import os

    from edgecnn.runtime import open_session, read_metadata

    session = open_session(model)
    meta = read_metadata(session, source=model)
    data = {**dataclasses.asdict(meta), "input": meta.input.to_dict(), "file": model,
            "size_bytes": os.path.getsize(model), "graph_input": session.get_inputs()[0].shape,
            "graph_input_type": session.get_inputs()[0].type, "session_providers": session.get_providers()}
    if as_json:
        _print_json(data)
        return
    parity = meta.parity
    quant = meta.quantization
    auto = f" (auto's choice among {', '.join(r['candidate'] for r in quant['auto']['table'])})" if "auto" in quant else ""
    lines = [
        f"file            {model} ({data['size_bytes']:,} bytes), edgecnn {meta.version}",
        f"arch            {meta.arch}, trained on {meta.dataset}"
        + (f", fp32 test accuracy {meta.fp32_test_accuracy:.2%}" if meta.fp32_test_accuracy is not None else ""),
        f"classes         {len(meta.class_names)}: {', '.join(meta.class_names)}",
        f"input           {meta.input.name}: {meta.input.dtype} {meta.input.layout} "
        f"{'×'.join(map(str, meta.input.graph_shape))} per image"
        + (" (raw pixels; the graph normalises)" if meta.input.baked else " (normalised)"),
        f"normalization   mean {list(meta.mean)}, std {list(meta.std)}",
        f"quantization    {quant.get('mode')}{auto}",
    ]
    if parity:
        lines.append(f"parity          {'passed' if parity.get('passed') else 'FAILED'} on {parity['samples']:,} test "
                     f"images: top-1 agreement {parity['top1_agreement']:.2%}, max |Δlogit| {parity['max_abs']:.3g}, "
                     f"Δaccuracy {parity['delta_accuracy_pp']:+.2f} pp")
    click.echo("\n".join(lines))


def _batch_sizes(text: str) -> tuple[int, ...]:
    from edgecnn.errors import ConfigError

    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--batch-sizes takes whole numbers separated by commas, e.g. 1,8,64 (got {text!r})") from None
    return sizes


@main.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--provider", type=click.Choice(DEVICES), default=BenchConfig.provider, show_default=True)
@click.option("--batch-sizes", default="1,8,64", show_default=True)
@click.option("--threads", type=int, default=None, help="Intra-op threads (default: one per core).")
@click.option("--warmup", type=int, default=BenchConfig.warmup, show_default=True)
@click.option("--iters", type=int, default=BenchConfig.iters, show_default=True)
@click.option("--duration", type=float, default=None, help="Seconds per batch size instead of --iters.")
@click.option("--cold-runs", type=int, default=BenchConfig.cold_runs, show_default=True, help="Fresh processes per model for cold start (0: skip).")
@click.option("--torch", "torch_checkpoint", default=None, help="Add torch eager from this checkpoint as a row.")
@click.option("--json", "json_path", default=None, help="Write every figure as JSON to PATH, or '-' for stdout only.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False), help="Write a PNG chart.")
def bench(models: tuple[str, ...], batch_sizes: str, torch_checkpoint: str | None, json_path: str | None,
          plot_path: str | None, **options: Any) -> None:
    """Measure MODEL.onnx files (and torch eager) round-robin: percentiles, throughput, start-up, memory."""
    from edgecnn.bench import format_report, run_bench
    from edgecnn.files import write_json

    config = BenchConfig(batch_sizes=_batch_sizes(batch_sizes), **options)
    log = (lambda line: click.echo(f"edgecnn: {line}", err=True)) if sys.stderr.isatty() else (lambda _: None)
    result = run_bench(list(models), config, torch_checkpoint=torch_checkpoint, log=log)
    if plot_path:
        try:
            from edgecnn.plots import plot_latency
        except ImportError:  # matplotlib comes with the [train] extra
            raise _Failure("--plot needs matplotlib: pip install matplotlib") from None
        plot_latency(result, plot_path)
    if json_path == "-":
        _print_json(result)
        return
    if json_path:
        write_json(json_path, result)
    click.echo(format_report(result))
