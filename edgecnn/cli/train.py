"""``edgecnn archs`` and ``edgecnn train``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from edgecnn.cli.options import config_from_options, config_options, convert_option
from edgecnn.cli.output import print_json
from edgecnn.cli.requires import require
from edgecnn.config import AUGMENTATIONS, DEVICES, OPTIMIZERS, SCHEDULES, TrainConfig
from edgecnn.files import CHECKPOINT_NAME, CONFUSION_NAME, CURVES_NAME, METRICS_NAME, check_writable

__all__ = ["archs", "train"]

TRAIN_HELP = {
    "arch": "Registered architecture (see `edgecnn archs`).",
    "dataset": "mnist, fashion-mnist, or a folder with one sub-folder of images per class.",
    "epochs": "Epochs in all (with --resume: the new total).",
    "batch_size": "Images per optimizer step.",
    "lr": "Learning rate.",
    "optimizer": "Optimizer.",
    "momentum": "Momentum for sgd and rmsprop.",
    "weight_decay": "Weight decay (L2 for adam/sgd/rmsprop, decoupled for adamw).",
    "schedule": "Learning rate over the run: constant, cosine (to 0) or onecycle (lr/25 → lr → lr/25e4).",
    "warmup_epochs": "Linear warm-up, in epochs (may be fractional; onecycle with 0: its first 30 %).",
    "label_smoothing": "Cross-entropy label smoothing (0: none).",
    "augment": "Per-batch augmentation: affine (digits), crop-flip (clothing), flip (clothing, small nets), none.",
    "val_size": "Images held out of the training set to choose the epoch kept (default: 1/12, ≤5,000; 0: none).",
    "patience": "Stop after N epochs without a better validation accuracy (0: never).",
    "init": "Start from trained weights: zoo:NAME or a .safetensors file (a new head if the classes differ).",
    "seed": "Seeds every RNG of the run.",
    "limit_train": "Train on a seeded random subset of N images.",
    "image_size": "Input side for image folders.",
    "test_fraction": "Held-out share of an image folder that has no train/ + test/ split.",
    "device": "Torch device.",
    "data_root": "Dataset root (default: $EDGECNN_DATA, else the user cache dir).",
    "checkpoint_every": "Also checkpoint every N optimizer steps, mid-epoch (--resume continues exactly from it).",
    "local_batchnorm": "Several processes: BatchNorm statistics per process, not the global batch's.",
    "dist_timeout": "Several processes: seconds to wait for a peer before the run fails.",
    "max_memory_gb": "An image folder larger than this decoded is read from disk batch by batch (default: half "
    "the available RAM; 0: always).",
    "workers": "Processes decoding an image folder (default: this process's share of the cores, up to 4; "
    "batches read from disk for CPU training: 0, decoded in the training process).",
}
_OUTPUTS = f"{{{CHECKPOINT_NAME},{METRICS_NAME},{CURVES_NAME},{CONFUSION_NAME}}}"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def archs(as_json: bool) -> None:
    """List the registered architectures (parameters for 1×28×28 input, 10 classes)."""
    require("train", "edgecnn archs")
    from edgecnn.training.architectures import count_parameters, create, get_arch, list_archs

    rows = [
        {
            "name": name,
            "parameters": count_parameters(create(name)),
            "input_shape": [1, 28, 28],
            "summary": get_arch(name).summary,
        }
        for name in list_archs()
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']:<12} {row['parameters']:>10,}  1×28×28  {row['summary']}")


@click.command()
@config_options(
    TrainConfig,
    help=TRAIN_HELP,
    choices={"optimizer": OPTIMIZERS, "device": DEVICES, "schedule": SCHEDULES, "augment": AUGMENTATIONS},
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help=f"Run directory for {CHECKPOINT_NAME}, {METRICS_NAME} and plots.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as JSON on stdout.")
@click.option(
    "--nproc-per-node",
    type=click.IntRange(1, 1024),
    default=None,
    help="Train in N processes on this machine (torchrun's launcher; --batch-size stays the global batch).",
)
@click.option(
    "--max-restarts",
    type=click.IntRange(0, 100),
    default=0,
    show_default=True,
    help="With --nproc-per-node: restart the processes this often after one fails (they resume from the checkpoint).",
)
@click.pass_context
def train(
    ctx: click.Context,
    out_dir: str,
    resume: bool,
    as_json: bool,
    nproc_per_node: int | None,
    max_restarts: int,
    **options: Any,
) -> None:
    """Train a registered net and write checkpoint.pt, metrics.json, curves.png and confusion.png. Under torchrun
    (`torchrun --nproc-per-node N -m edgecnn train ...`) each process trains its share of every batch."""
    check_writable(out_dir, directory=True, what="--out")  # before minutes of training, not after
    require("train", "edgecnn train")
    from edgecnn.training import distributed, loop

    if nproc_per_node and distributed.from_env().world == 1:
        distributed.launch(nproc_per_node, _worker_argv(sys.argv[1:]), max_restarts=max_restarts)
        return
    # torchrun restarted the group after a failure: continue from the last checkpoint, whatever was asked
    resume = resume or (distributed.restarted() and (Path(out_dir) / CHECKPOINT_NAME).is_file())
    config = _config(ctx, out_dir, resume, options)
    try:
        result = loop.fit(config, out_dir, resume=resume, progress=sys.stderr.isatty())
    except distributed.PeerLost:
        if os.environ.get(distributed.LAUNCHED):  # edgecnn's launcher says which process failed, in one line
            ctx.exit(distributed.PEER_LOST_EXIT)
        raise
    except KeyboardInterrupt:
        saved = (Path(out_dir) / CHECKPOINT_NAME).is_file()
        hint = (
            f"the last checkpoint (an epoch's end, or --checkpoint-every's step) is in {out_dir}; "
            "continue with --resume"
            if saved
            else "no checkpoint had been written, so nothing was saved; run the command again to start over"
        )
        click.echo(f"edgecnn: interrupted; {hint}", err=True)
        ctx.exit(130)
    if not distributed.from_env().rank:  # rank 0 speaks for the run
        _report(result, config, out_dir, as_json)


def _worker_argv(argv: list[str]) -> list[str]:
    """This command line for the processes the launcher starts: without the launcher's own options."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--nproc-per-node", "--max-restarts"):
            skip = True
        elif not arg.startswith(("--nproc-per-node=", "--max-restarts=")):
            out.append(arg)
    return out


def _config(ctx: click.Context, out_dir: str, resume: bool, options: dict[str, Any]) -> Any:
    from edgecnn.training import loop

    if not resume:
        return config_from_options(TrainConfig, options)
    given = {  # the saved run's settings, changed only where the user said so on this command line
        k: convert_option(TrainConfig, k, v)
        for k, v in options.items()
        if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT
    }
    return loop.resume_config(out_dir, given)


def _report(result: Any, config: TrainConfig, out_dir: str, as_json: bool) -> None:
    if as_json:
        print_json(result.summary())
        return
    last, val = result.epochs[-1], result.card.metrics.get("val_accuracy")
    chosen = f"epoch {result.best_epoch} of {last['epoch']}" + (f", validation {val:.2%}" if val is not None else "")
    click.echo(
        f"{config.arch} on {config.dataset}: test accuracy {result.test_accuracy:.2%} ({chosen}), "
        f"{last['samples_per_s']:,.0f} samples/s; wrote {out_dir}/{_OUTPUTS}"
    )
