"""``edgecnn check``: a model file on the targets' kernels (runtime/checking.py), exit 1 naming each failing
target; ``--record`` writes the results into the file's metadata, where ``edgecnn info`` shows them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import click

from edgecnn.cli.options import config_from_options, config_options
from edgecnn.cli.output import print_json
from edgecnn.cli.zoo import resolve_model, zoo_dir_option
from edgecnn.config import CheckConfig

__all__ = ["check_command", "CHECK_HELP"]

CHECK_HELP = {
    "targets": "Comma-separated target names (`edgecnn targets` lists them), or all.",
    "data": "Labelled images: mnist, fashion-mnist or a folder of class folders (default: the model's dataset).",
    "samples": "Test images run on every target (prepared once here).",
    "max_accuracy_drop": "Percentage points a quantized file may lose vs the reference on a target.",
    "reference": "An fp32 .onnx file to judge against (default: a zoo net's fp32 file, else MODEL run here).",
    "jobs": "Processes per target at once, each a share of the images (QEMU emulates one thread; default: cores).",
}


@click.command("check")
@click.argument("model")
@config_options(CheckConfig, help=CHECK_HELP)
@click.option("--data-root", default=None, help="Dataset root (default: $EDGECNN_DATA, else the user cache dir).")
@click.option("--record", is_flag=True, help="Write the per-target results into MODEL's metadata (atomically).")
@click.option("--json", "as_json", is_flag=True, help="Print the check (a row per target) as JSON.")
@zoo_dir_option
def check_command(
    model: str, data_root: str | None, record: bool, as_json: bool, zoo_dir: str | None, **options: Any
) -> None:
    """Run MODEL on each target's kernels — this CPU, x86-64 without AVX-512/VNNI, Raspberry Pi 4 and 5 CPUs
    (a Debian arm64 root with edgecnn's device install, under QEMU), onnxruntime-web's WebAssembly — on the
    same labelled test images, and judge each against the reference run here with the gates of the file's
    precision: accuracy, top-1 agreement, max |Δlogit|. On aarch64 the device install also answers `edgecnn
    info` and `edgecnn predict` as this machine does. Exit 1 names each failing target. Emulated runs are
    never timed: QEMU's speed is not the device's. MODEL may be zoo:NAME[:fp32|int8]."""
    from edgecnn.data.check_inputs import prepare_check
    from edgecnn.errors import ConfigError
    from edgecnn.runtime.checking import check_model
    from edgecnn.runtime.metadata_edit import record_targets
    from edgecnn.runtime.targets import parse_targets

    config = config_from_options(CheckConfig, options)
    targets = parse_targets(",".join(config.targets))
    if record and model.startswith("zoo:"):
        raise ConfigError("--record writes into the file: give a path (the zoo's files are checked against its index)")
    path = Path(resolve_model(model, zoo_dir))
    with tempfile.TemporaryDirectory(prefix="edgecnn-check-") as tmp:
        inputs = prepare_check(model, path, config, data_root=data_root, zoo_dir=zoo_dir, work=Path(tmp))
        report = check_model(
            path,
            inputs.meta,
            targets,
            feed=inputs.feed,
            labels=inputs.labels,
            data=inputs.data,
            reference=inputs.reference,
            max_accuracy_drop=config.max_accuracy_drop,
            device_image=inputs.image,
            progress=lambda line: click.echo(line, err=True),
            jobs=config.jobs or min(os.cpu_count() or 1, 8),
        )
    if record:
        record_targets(path, report.records())
    finish(report, as_json)


def finish(report: Any, as_json: bool) -> None:
    """Print the check, then exit 1 naming each failing target."""
    from edgecnn.errors import ParityError

    if as_json:
        print_json(report.to_dict())
    else:
        show_check(report)
    if report.failing:
        raise ParityError(report.failure_message(), report=report)


def show_check(report: Any) -> None:
    click.echo(f"{report.model} ({report.precision}) on {report.samples} {report.data} test images")
    click.echo(
        f"reference: {report.reference}, accuracy {report.reference_accuracy:.2%}; gates {report.gates.to_dict()}"
    )
    head = f"{'target':<12} {'runtime':<22} {'accuracy':>8} {'Δacc pp':>8} {'agree':>7} {'max|Δ|':>9} {'vs here':>9}"
    click.echo(head + "  result")
    for row in report.rows:
        click.echo(_row(row))


def _row(row: Any) -> str:
    if row.accuracy is None:
        blank = f"{'-':<22} {'-':>8} {'-':>8} {'-':>7} {'-':>9} {'-':>9}"
        return f"{row.target:<12} {blank}  FAILED: {'; '.join(row.failures)}"
    runtime = f"{row.runtime} {row.version}"
    result = "passed" if row.passed else "FAILED: " + "; ".join(row.failures)
    device = f" (device install: {', '.join(f'{k} {v}' for k, v in row.device.items())})" if row.device else ""
    return (
        f"{row.target:<12} {runtime:<22} {row.accuracy:>8.2%} {row.delta_accuracy_pp:>+8.2f} {row.agreement:>7.2%} "
        f"{row.max_abs:>9.2g} {row.max_abs_native:>9.2g}  {result}{device}"
    )
