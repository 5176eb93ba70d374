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
from edgecnn.config import DEVICES, OPTIMIZERS, TrainConfig
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
