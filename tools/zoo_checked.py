"""The zoo's text about the targets (``edgecnn check``, tools/zoo_verify.py): a card's per-target table and
the README's "verified on" column, from the ``targets`` entry of the card (per file, the check's rows)."""

from __future__ import annotations

from typing import Any

__all__ = ["targets_section", "verified_on", "verified_note"]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def targets_section(card: dict[str, Any]) -> str:
    checks = card["targets"]
    first = next(iter(checks.values()))
    rows = {r["target"]: r for check in checks.values() for r in check["rows"]}
    legend = "\n".join(f"- `{name}`: {_stands_for(row, card)}" for name, row in rows.items())
    gates = "; ".join(f"{key} file {_gates(check['gates'])}" for key, check in checks.items())
    return (
        "## Checked on other CPUs\n\n" + _table(checks) + "\n\n" + legend + "\n\n"
        f"`edgecnn check --targets all --record` ran each file on each target's kernels, on the first "
        f"{first['samples']:,} {first['data']} test images, prepared once on the build machine. The reference is "
        "the fp32 file run on the build machine (onnxruntime): the fp32 file is judged against itself run there, "
        "the int8 file against the fp32 file (accuracy, Δacc, agreement and max |Δlogit| all against it); the last "
        "max |Δlogit| is against the same file run on the build machine: what the target's kernels alone change. "
        f"Gates: {gates}. On aarch64, edgecnn's device install also had to answer `edgecnn info` and `edgecnn "
        "predict` as the build machine does. Emulated runs (QEMU, Node) are not timed: an emulator's speed is "
        "not the device's. Each file carries its rows in its metadata (`edgecnn.targets`, shown by `edgecnn "
        f"info`); checked {first['date']}.\n"
    )


def _table(checks: dict[str, Any]) -> str:
    lines = [
        "| file | target | runtime | images | accuracy | Δacc pp | top-1 agreement | max \\|Δlogit\\| "
        "| max \\|Δlogit\\| vs the file on the build machine | passed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, check in checks.items():
        for r in check["rows"]:
            figures = "— | — | — | — | — | — | —"
            if r["accuracy"] is not None:
                figures = (
                    f"{r['runtime']} {r['version']} | {check['samples']:,} | {_pct(r['accuracy'])} | "
                    f"{r['delta_accuracy_pp']:+.2f} | {_pct(r['agreement'])} | {r['max_abs']:.2g} | "
                    f"{r['max_abs_native']:.2g}"
                )
            passed = "yes" if r["passed"] else "**no**: " + "; ".join(r["failures"]).replace("|", "\\|")
            lines.append(f"| {key} | `{r['target']}` | {figures} | {passed} |")
    return "\n".join(lines)


def _stands_for(row: dict[str, Any], card: dict[str, Any]) -> str:
    if row["target"] == "native":
        return f"the build machine itself ({card['latency']['environment']['cpu']}), as it is"
    return row["stands_for"] + (f" (QEMU user mode, -cpu {row['cpu']})" if row.get("cpu") else "")


def _gates(gates: dict[str, float]) -> str:
    parts = []
    if "max_abs" in gates:
        parts.append(f"max |Δlogit| ≤ {gates['max_abs']:g}")
    if "top1_agreement" in gates:
        parts.append(f"top-1 agreement ≥ {_pct(gates['top1_agreement'])}")
    if "max_accuracy_drop_pp" in gates:
        parts.append(f"accuracy at most {gates['max_accuracy_drop_pp']:g} pp below the reference")
    return ", ".join(parts)


def verified_on(card: dict[str, Any]) -> str:
    """The targets where every file of the net passed, then each that failed ("—": not checked)."""
    checks = card.get("targets") or {}
    if not checks:
        return "—"
    names = list(dict.fromkeys(r["target"] for check in checks.values() for r in check["rows"]))
    failed: dict[str, list[str]] = {}
    for key, check in checks.items():
        for row in check["rows"]:
            if not row["passed"]:
                failed.setdefault(row["target"], []).append(key)
    text = ", ".join(name for name in names if name not in failed) or "none"
    return text + "".join(f"; **failed**: {' and '.join(keys)} on {name}" for name, keys in failed.items())


def verified_note(cards: list[dict[str, Any]]) -> str:
    """The README's sentence on its "verified on" column ("" while no card holds checks)."""
    samples = sorted({check["samples"] for card in cards for check in (card.get("targets") or {}).values()})
    if not samples:
        return ""
    return (
        " Verified on: the targets (`edgecnn targets`) where both files passed `edgecnn check` against the fp32 "
        f"file run on the build machine, on {' or '.join(f'{n:,}' for n in samples)} test images per file (each "
        "card's per-target table has the figures)."
    )
