"""The command line: click only, one small module per command group (parse → config → one call → print).

The commands: ``train`` (``edgecnn archs`` and ``train``), ``export`` (``export`` and ``verify``),
``quantize``, ``bundle``, ``predict`` (its files: ``classify_files``), ``info``, ``tune``, ``check`` and
``targets`` (targets.py),
``bench``, ``serve``, ``zoo`` (and the ``zoo:NAME`` argument); their
helpers: ``options`` (options generated from the config fields), ``quantization`` (the options export and
quantize share, their help written once), ``output`` (what every command prints the same way),
``requires`` (which extra a command needs, checked before any work) and ``stop`` (Ctrl-C stops a model's run).

Tier 0 at import time: commands import the torch-side modules inside their bodies, so ``edgecnn
predict`` and ``edgecnn bench`` start without torch. Every :class:`EdgeCNNError` becomes one line on
stderr and exit 1; click's usage errors exit 2.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import click

from edgecnn import __version__
from edgecnn.cli.bench import bench
from edgecnn.cli.bundle import bundle
from edgecnn.cli.check import check_command
from edgecnn.cli.export import export_command, verify
from edgecnn.cli.info import info
from edgecnn.cli.output import warn
from edgecnn.cli.predict import predict
from edgecnn.cli.quantize import quantize
from edgecnn.cli.serve import serve
from edgecnn.cli.targets import targets_command
from edgecnn.cli.train import archs, train
from edgecnn.cli.tune import tune_command
from edgecnn.cli.zoo import zoo_command
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
            raise _Failure(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="edgecnn", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log what edgecnn (and onnxruntime) do, on stderr.")
def main(verbose: bool) -> None:
    """edgecnn: small image CNNs from training to the edge.

    Commands marked [train] need `pip install 'edgecnn[train]'`, [quantize] `pip install 'edgecnn[quantize]'`;
    the others run on a device install (`pip install 'edgecnn[cpu]'` or `'edgecnn[gpu]'`).
    """
    warnings.showwarning = _one_line_warning
    if verbose:
        logging.basicConfig(format="edgecnn: %(name)s: %(message)s")
        logging.getLogger("edgecnn").setLevel(logging.DEBUG)


def _one_line_warning(message: Warning | str, category: type[Warning], *_args: Any, **_kwargs: Any) -> None:
    """A warning edgecnn gives (the CUDA or backend fallback) is one line on stderr, as errors are."""
    warn(str(message))


# the extra each command needs, shown in `edgecnn --help`
_EXTRA = {"archs": "train", "train": "train", "export": "train", "verify": "train", "quantize": "quantize"}
_EXTRA["serve"] = "serve"
_EXTRA["bundle"] = "quantize"

_COMMANDS = (
    archs,
    train,
    export_command,
    verify,
    quantize,
    predict,
    info,
    tune_command,
    check_command,
    targets_command,
    bundle,
    bench,
    serve,
    zoo_command,
)
for _command in _COMMANDS:
    main.add_command(_command)
    if _command.name in _EXTRA:
        _command.short_help = f"[{_EXTRA[_command.name]}] {_command.get_short_help_str(limit=60)}"
