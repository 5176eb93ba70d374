"""``edgecnn info``: what any ONNX file holds; for an edgecnn model also its card, framing and parity."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from edgecnn.cli.output import print_json
from edgecnn.cli.zoo import resolve_model, zoo_dir_option

__all__ = ["info"]


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@zoo_dir_option
def info(model: str, as_json: bool, zoo_dir: str | None) -> None:
    """Show what MODEL.onnx holds: inputs, outputs, opsets and op counts; for an edgecnn model also its card
    (arch, classes, normalization, data, metrics, lineage), default framing, quantization and parity.
    MODEL may be a zoo model, zoo:NAME[:fp32|int8] (`edgecnn zoo` lists them)."""
    from edgecnn.files import report_status
    from edgecnn.runtime.graphinfo import read_graph_info
    from edgecnn.runtime.metadata import PREFIX, decode, metadata_props
    from edgecnn.runtime.session import open_session

    asked, model = model, resolve_model(model, zoo_dir)
    graph = read_graph_info(model)
    session = open_session(model)  # onnxruntime must load it too: info on a file it refuses would mislead
    props = metadata_props(session, source=model)  # onnxruntime's view: bytes that are not UTF-8 are refused
    meta = decode(props, source=model) if PREFIX + "schema" in props else None
    data = {
        "file": model,
        "size_bytes": os.path.getsize(model),
        "graph": graph.to_dict(),
        "session_providers": session.get_providers(),
        "edgecnn": _edgecnn(meta),
        "report": report_status(model),
    }
    if meta is not None:
        data["input"] = meta.input.to_dict()  # the graph input as edgecnn feeds it
        data["auto_machine"] = _auto_machine(meta.quantization)
        data["auto_here"] = _auto_here(asked, Path(model), meta, zoo_dir)
    if as_json:
        print_json(data)
        return
    card = (
        [*_card_lines(meta), f"auto here       {data['auto_here']['origin']}"]
        if meta
        else ["edgecnn          no edgecnn metadata: `edgecnn predict` / Predictor need --classes, --mean, --std"]
    )
    click.echo("\n".join(_graph_lines(model, data["size_bytes"], graph) + card + [report_line(data["report"])]))


def report_line(report: dict[str, Any] | None) -> str:
    """One line: does MODEL.report.json beside the model describe this very file?"""
    if report is None:
        return "report          none beside it"
    name = Path(report["path"]).name
    if report["matches"] is None:
        return f"report          {name} records no model_sha256 (an older edgecnn's, or unreadable): cannot tell"
    if report["matches"]:
        return f"report          {name} describes this file"
    return f"report          {name} describes ANOTHER file (sha256 {report['recorded_sha256'][:12]}…); re-export"


def _edgecnn(meta: Any) -> dict[str, Any] | None:
    if meta is None:
        return None
    from edgecnn.runtime.framing import default_fit

    return {
        "version": meta.version,
        "card": meta.card.to_dict(),
        "default_fit": default_fit(meta.card.dataset),
        "quantization": dict(meta.quantization),
        "parity": dict(meta.parity),
        "targets": dict(meta.targets),
    }


def _shape(tensor: Any) -> str:
    return f"{tensor.name}: {tensor.dtype} [{', '.join('?' if d is None else str(d) for d in tensor.shape)}]"


def _graph_lines(model: str, size: int, graph: Any) -> list[str]:
    ops = ", ".join(f"{op} {count}" for op, count in graph.op_counts.items())
    return [
        f"file            {model} ({size:,} bytes)",
        f"graph           IR {graph.ir_version}, opsets {', '.join(f'{d} {v}' for d, v in graph.opsets.items())}"
        + (f", made by {graph.producer}" if graph.producer else ""),
        f"inputs          {'; '.join(_shape(t) for t in graph.inputs)}",
        f"outputs         {'; '.join(_shape(t) for t in graph.outputs)}",
        f"ops             {ops}",
    ]


def _card_lines(meta: Any) -> list[str]:
    from edgecnn.runtime.framing import default_fit

    card, spec, quant, parity = meta.card, meta.input, meta.quantization, meta.parity
    auto = _auto_note(quant.get("auto"))
    lines = [
        f"edgecnn         {meta.version}: {card.arch}, trained on {card.dataset or '?'}",
        f"classes         {len(card.class_names)}: {', '.join(card.class_names)}",
        f"input           {spec.name}: {spec.dtype} {spec.layout} {'×'.join(map(str, spec.graph_shape))} per image"
        + (" (raw pixels; the graph normalises)" if spec.baked else " (normalised)"),
        f"normalization   mean {list(card.normalization.mean)}, std {list(card.normalization.std)}",
        f"framing         fit={default_fit(card.dataset)} by default (--fit / Predictor(fit=...) to change)",
        f"lineage         {card.lineage.summary()}",
        f"quantization    {quant.get('mode')}{auto}",
    ]
    machine = _auto_machine(quant)
    if machine is not None:
        lines.append(_machine_line(machine))
    if parity:
        lines.append(_parity_line(card, parity))
    return lines + _target_lines(meta.targets)


def _target_lines(targets: Any) -> list[str]:
    """What `edgecnn check --record` found on each target (never a timing: emulated runs are not timed)."""
    lines = []
    for name, row in sorted(targets.items()) if isinstance(targets, dict) else ():
        if not isinstance(row, dict):
            continue
        figures = (
            f"agreement {row['agreement']:.2%}, Δacc {row['delta_accuracy_pp']:+.2f} pp, "
            f"max |Δlogit| {row['max_abs']:.3g}"
            if isinstance(row.get("agreement"), float | int)
            else "did not run"
        )
        verdict = "passed" if row.get("passed") else "FAILED"
        lines.append(
            f"checked on      {name}: {verdict} ({figures}) on {row.get('samples')} {row.get('data')} images, "
            f"{row.get('runtime')} {row.get('version')}, {row.get('date')}"
        )
    return lines


def _auto_here(asked: str, path: Path, meta: Any, zoo_dir: str | None) -> dict[str, Any]:
    """What Predictor(backend="auto") runs here and why — without tuning (a Predictor would tune on first load)."""
    from edgecnn.runtime.auto import TUNE_ENV, auto_files, settled_choice, tuning_enabled

    primary = str(meta.quantization.get("mode", "none"))
    choice = settled_choice(auto_files(asked, zoo_dir, path=path, primary=primary), primary, meta, "cpu")
    if choice is None:
        when = (
            "a Predictor tunes it on its first load (within 1.3 s) and caches it; `edgecnn tune` measures it fully"
            if tuning_enabled()
            else f"not tuned ({TUNE_ENV}=0): the recorded choice is used as is; `edgecnn tune` measures it here"
        )
        return {"decided": False, "origin": f"not decided on this machine yet: {when}"}
    return {
        "decided": True,
        "origin": choice.origin,
        "file": str(choice.path),
        "backend": choice.backend,
        "hint": choice.hint,
        "threads": choice.threads,
        "spinning": choice.spinning,
        "cache": None if choice.cache is None else str(choice.cache),
    }


def _auto_machine(quantization: Any) -> dict[str, Any] | None:
    """Where auto's recorded choice was measured, against this machine (None: auto did not choose)."""
    from edgecnn.runtime.fingerprint import compare_with_this_machine

    auto = quantization.get("auto")
    return compare_with_this_machine(auto.get("machine")) if isinstance(auto, dict) else None


def _machine_line(machine: dict[str, Any]) -> str:
    from edgecnn.runtime.fingerprint import read_fingerprint

    recorded = read_fingerprint(machine["recorded"])
    if recorded is None:
        return "auto measured   on a machine it did not record; this machine: cannot tell"
    verdict = "same" if machine["same"] else f"different ({', '.join(machine['differs'])})"
    return f"auto measured   on {recorded.summary()}; this machine: {verdict}"


def _auto_note(auto: Any) -> str:
    """Which candidate auto chose among which, and what ``backend="auto"`` will run it on."""
    if not isinstance(auto, dict):
        return ""
    among = ", ".join(str(r.get("candidate")) for r in auto.get("table", []))
    runtime = auto.get("runtime") or {}
    runs = (
        f"; backend auto runs it on {runtime['backend']} {runtime.get('precision', '')}" if "backend" in runtime else ""
    )
    return f" (auto's choice: {auto.get('chosen')} among {among}{runs})"


def _parity_line(card: Any, parity: dict[str, Any]) -> str:
    reference = parity.get("reference", "torch")
    reference_accuracy = parity.get("reference_accuracy", parity.get("torch_accuracy", float("nan")))
    trained = f"; fp32 at training {card.test_accuracy:.2%}" if card.test_accuracy is not None else ""
    return (
        f"parity          {'passed' if parity.get('passed') else 'FAILED'} on {parity['samples']:,} test images "
        f"vs {reference}: top-1 agreement {parity['top1_agreement']:.2%}, max |Δlogit| {parity['max_abs']:.3g}; "
        f"accuracy {parity['onnx_accuracy']:.2%} (this file) vs {reference_accuracy:.2%} ({reference})"
        f"{trained}"
    )
