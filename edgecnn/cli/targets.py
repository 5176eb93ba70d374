"""``edgecnn targets``: where a model file can be checked, ready or not here; ``edgecnn targets setup``
makes them ready."""

from __future__ import annotations

from pathlib import Path

import click

from edgecnn.cli.output import print_json

__all__ = ["targets_command"]


@click.group("targets", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON list: name, what it stands for, ready, why.")
@click.pass_context
def targets_command(ctx: click.Context, as_json: bool) -> None:
    """List the targets `edgecnn check` and `export --targets` run a model on — this machine, an AVX2-only
    x86-64 CPU and two Raspberry Pi CPUs under QEMU, onnxruntime-web's WebAssembly — each ready here or not,
    and why. `edgecnn targets setup` makes them ready (docs/targets.md)."""
    if ctx.invoked_subcommand is not None:
        return
    from edgecnn.runtime.targets import get_target, list_targets, readiness, targets_dir

    rows = [(get_target(name), readiness(get_target(name))) for name in list_targets()]
    if as_json:
        print_json([{**target.to_dict(), **state.to_dict()} for target, state in rows])
        return
    width = max(len(target.name) for target, _ in rows)
    for target, state in rows:
        mark = "ready" if state.ready else "NOT READY"
        click.echo(f"{target.name:<{width}}  {mark:<9}  {target.stands_for}")
        click.echo(f"{'':<{width}}  {'':<9}  {state.why}" + (f" — make it: {state.make}" if state.make else ""))
    click.echo(f"(made in {targets_dir()})")


@targets_command.command("setup")
@click.argument("names", nargs=-1)
@click.option("--wheel", type=click.Path(dir_okay=False, exists=True), help="The edgecnn wheel to install on aarch64.")
def setup_command(names: tuple[str, ...], wheel: str | None) -> None:
    """Make NAMES ready (default: all): QEMU user mode and a Debian arm64 root with a device install of edgecnn
    (root, Debian/Ubuntu: apt-get, debootstrap; several minutes the first time), onnxruntime-web from npm.
    Idempotent: a ready target is left as it is; a changed checkout re-installs the wheel on aarch64."""
    from edgecnn.runtime.target_setup import setup_targets
    from edgecnn.runtime.targets import parse_targets

    chosen = parse_targets(",".join(names) or "all")
    setup_targets(chosen, wheel=Path(wheel) if wheel else None, log=lambda line: click.echo(line, err=True))
