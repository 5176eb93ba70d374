"""Stage ``verify`` of tools/build_zoo.py: every zoo file checked on every target, recorded in the file.

Per net, each ONNX file runs through ``edgecnn check --targets all --record`` on the first 2,000 test images
of the net's dataset, judged against the fp32 file run on this machine (the int8 file with ``--reference``
its fp32 file). The checks run on copies in ``RUNS/verify/NAME/``: models/ stays as its index says while
they run (the runtime, and a wheel built meanwhile, verify every file against it). When every file has been
checked, the recorded copies replace the zoo's files, each export report's ``model_sha256`` and size follow
their file (``edgecnn info`` compares them), the cards gain their per-target table, the README its
"verified on" column, and the index is written last. A failing target is recorded all the same; the stage
then names each failing file and target.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from zoo_cards import write_card, write_index, write_readme
from zoo_recipes import ZOO

from edgecnn.errors import TargetError
from edgecnn.files import atomic_path, file_sha256, report_path, write_json
from edgecnn.runtime.targets import get_target

__all__ = ["verify_all", "SAMPLES"]

SAMPLES = 2000  # test images per file and target (issue 25: at least 2,000)
VARIANTS = ("fp32", "int8")  # fp32 first: it is the int8 file's reference
_REPORT_KEYS = ("precision", "reference", "reference_accuracy", "data", "samples", "gates", "passed")


def verify_all(names: list[str], models: Path, work: Path) -> list[str]:
    """Check every file of ``names`` on every target, then write the results into models/; returns one
    line per failing file and target (empty: all passed)."""
    checked = {}
    for name in names:
        checked[name] = {key: check_file(name, key, models, work / name) for key in VARIANTS}
    for name, results in checked.items():
        install_net(name, models, results)
    write_readme(models)
    write_index(models)  # last: it records every other file's SHA-256
    return [line for results in checked.values() for result in results.values() for line in result["failures"]]


def check_file(name: str, key: str, models: Path, work: Path) -> dict[str, Any]:
    """``edgecnn check`` on a copy of models/NAME's ``key`` file (the fp32 copy is the int8 one's reference);
    a copy that passed earlier, from the same source file on as many images, is kept (a stage resumes)."""
    card = json.loads((models / name / "card.json").read_text())
    source = models / name / card["files"][key]["path"]
    copy, shown = work / source.name, f"models/{name}/{source.name}"
    stamp = {"source_sha256": file_sha256(source), "samples": SAMPLES}
    if _stamp_of(copy) == stamp:
        print(f"# {name} {key}: checked earlier ({copy}), kept", flush=True)
        return _result(copy, shown, json.loads(copy.with_suffix(".check.json").read_text()), "")
    work.mkdir(parents=True, exist_ok=True)
    copy.with_suffix(".stamp.json").unlink(missing_ok=True)
    shutil.copyfile(source, copy)
    setup_targets()  # again before each file: the device install must be the edgecnn that runs the check
    command = [sys.executable, "-m", "edgecnn", "check", str(copy), "--targets", "all", "--data", ZOO[name].dataset]
    command += ["--samples", str(SAMPLES), "--record", "--json"]
    if key != "fp32":
        command += ["--reference", str(work / card["files"]["fp32"]["path"])]
    print(f"# check {name} {key}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    report, seconds, error = run_check(command, copy.with_suffix(".check.json"))
    print(f"# {name} {key}: {time.perf_counter() - started:.0f} s; per target {seconds}", flush=True)
    if report is not None and report["passed"]:  # a failed check runs again next time
        write_json(copy.with_suffix(".stamp.json"), {**stamp, "seconds": seconds})
    return _result(copy, shown, report, error)


def _stamp_of(copy: Path) -> dict[str, Any] | None:
    try:
        stamp = json.loads(copy.with_suffix(".stamp.json").read_text())
        json.loads(copy.with_suffix(".check.json").read_text())
    except (OSError, ValueError):
        return None
    return {k: stamp.get(k) for k in ("source_sha256", "samples")} if copy.is_file() else None


def _result(copy: Path, shown: str, report: dict[str, Any] | None, error: str) -> dict[str, Any]:
    if report is None:
        return {"copy": copy, "report": None, "failures": [f"{shown}: edgecnn check did not finish: {error}"]}
    rows = [row for row in report["targets"] if not row["passed"]]
    failures = [f"{shown} fails on {row['target']}: {'; '.join(row['failures'])}" for row in rows]
    return {"copy": copy, "report": report, "failures": failures}


def run_check(command: list[str], out: Path) -> tuple[dict[str, Any] | None, dict[str, float], str]:
    """Run one check (its JSON into ``out``), echoing its progress lines and timing each target's run;
    (its report or None, wall seconds per target, the last line it printed on stderr)."""
    seconds: dict[str, float] = {}
    last, began = "", time.perf_counter()
    with open(out, "w") as stdout, subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:  # "check: NAME …" then "check: NAME: passed|FAILED: …"
            last = line.strip() or last
            words = last.split()
            if len(words) >= 3 and words[0] == "check:" and words[1].endswith(":"):
                seconds[words[1][:-1]] = round(time.perf_counter() - began, 1)
            elif len(words) == 3 and words[0] == "check:" and words[2] == "…":
                began = time.perf_counter()
            print(f"  {last}", flush=True)
    if proc.returncode not in (0, 1):
        return None, seconds, f"exit {proc.returncode}: {last}"
    try:
        report = json.loads(out.read_text())
    except ValueError:
        return None, seconds, f"exit {proc.returncode}, no report: {last}"
    return report, seconds, ""


def setup_targets() -> None:
    """``edgecnn targets setup`` (idempotent: a second call with nothing changed takes under a second)."""
    done = subprocess.run([sys.executable, "-m", "edgecnn", "targets", "setup"], capture_output=True, text=True)
    if done.returncode:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise TargetError(f"edgecnn targets setup failed (exit {done.returncode}): {lines[-1]}")


def install_net(name: str, models: Path, results: dict[str, dict[str, Any]]) -> None:
    """The checked copies into models/NAME, their export reports following them, the card's table."""
    out = models / name
    card = json.loads((out / "card.json").read_text())
    targets = dict(card.get("targets", {}))
    for key, result in results.items():
        if result["report"] is None:  # did not run: the zoo's file and its card entry stay as they were
            continue
        path = out / result["copy"].name
        with atomic_path(path) as tmp:
            shutil.copyfile(result["copy"], tmp)
        follow_report(path)
        card["files"][key]["bytes"] = path.stat().st_size
        targets[key] = card_entry(result["report"])
    card["targets"] = targets
    write_card(out, card, ZOO[name])


def card_entry(report: dict[str, Any]) -> dict[str, Any]:
    """What the card keeps of one check: its settings, and per target the row with what the target stands for."""
    entry = {key: report[key] for key in _REPORT_KEYS}
    entry["date"] = datetime.date.today().isoformat()
    entry["rows"] = [{**row, "stands_for": get_target(row["target"]).stands_for} for row in report["targets"]]
    return entry


def follow_report(path: Path) -> None:
    """The export report beside ``path`` describes its file again: ``--record`` rewrote only the metadata
    entry ``edgecnn.targets`` (graph and weights byte for byte), which changed the file's SHA-256 and size."""
    report = json.loads(report_path(path).read_text())
    report["model_sha256"] = file_sha256(path)
    report["size_bytes"]["exported"] = path.stat().st_size
    report["size_ratio"] = round(report["size_bytes"]["exported"] / report["size_bytes"]["fp32"], 4)
    report["metadata_rewritten_by"] = "edgecnn check --record (edgecnn.targets only)"
    write_json(report_path(path), report)
