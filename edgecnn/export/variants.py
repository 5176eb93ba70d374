"""The export job both commands run, from an fp32 ONNX file and a judge on: build the variants → pick one →
gate it → write it with its metadata and report card.

``edgecnn export`` (from_checkpoint.py: the fp32 graph exported from torch, judged against torch) and ``edgecnn
quantize`` (from_onnx.py: the user's fp32 file, judged against that file) differ only in where the fp32 graph
and the judge's reference come from; everything else is here, once. The job goes down, never back up: the
builders (modes.py → quantize.py, calibrate.py) receive the judge and the calibration sample (sample.py,
read on first use) in their :class:`~edgecnn.export.built.BuildContext`. Tier 1: numpy, onnx, onnxruntime; no torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from edgecnn.card import ModelCard
from edgecnn.config import QuantizationSettings
from edgecnn.data.labelled import Split
from edgecnn.errors import ParityError
from edgecnn.export.built import BuildContext, Built
from edgecnn.export.calibrate import describe_tried
from edgecnn.export.gates import ParityReport
from edgecnn.export.graphs import write_metadata
from edgecnn.export.judge import Judge, reference_phrase
from edgecnn.export.modes import AUTO, auto_candidates, get_mode
from edgecnn.export.on_targets import REMEDIES, TargetGate, Verdict, rebuilder, refused_error, require_ready
from edgecnn.export.report import ExportReport, measure_report
from edgecnn.export.sample import CalibrationSample
from edgecnn.files import atomic_path, report_path, write_json
from edgecnn.runtime.candidates import available_backends, open_contenders
from edgecnn.runtime.fastest import AutoDecision, choose_fastest
from edgecnn.runtime.metadata import InputSpec, ModelMetadata, read_metadata
from edgecnn.runtime.session import open_session

__all__ = ["Job", "Candidate", "Choice", "export_variants"]


@dataclass(frozen=True)
class Job:
    """What the job reads: the model's card, the settings, the mode asked for, the judge (its reference holds the
    labelled test images) and the training split calibration samples come from."""

    card: ModelCard
    settings: QuantizationSettings
    requested: str  # a mode name or "auto"
    judge: Judge
    train: Split  # read lazily: only the calibration sample is decoded
    dataset: str
    opset: int
    notes: tuple[str, ...] = ()  # said in the report's warnings (how the file was judged, when it is unusual)

    @property
    def spec(self) -> InputSpec:
        return self.judge.reference.spec


@dataclass(frozen=True)
class Candidate:
    path: Path
    built: Built


@dataclass(frozen=True)
class Choice:
    mode: str
    candidate: Candidate
    decision: AutoDecision | None  # auto's measurements, when auto chose


def export_variants(job: Job, fp32: Path, out: Path, work: Path) -> ExportReport:
    """Build, pick, gate and write ``out``, then its report card beside it; return the report. The model reaches
    ``out`` through an atomic rename only once every check has passed (a failed gate leaves nothing there);
    the card follows it and records the model's SHA-256, so a card an earlier export left (a kill between the
    two writes) shows as describing another file."""
    if job.settings.targets:  # a wrong name or a target not ready: said before anything is built
        require_ready(job.settings.targets)
    candidates, context = build_candidates(job, fp32, work)
    verdicts = gate_on_targets(job, candidates, fp32, context, out)
    choice = pick(job, candidates)
    with gating_output(out, choice):
        parity = job.judge.check(choice.candidate.path, exact=get_mode(choice.mode).exact)
    report = write(job, out, fp32, choice, parity, verdicts)
    write_json(report_path(out), report.to_dict())  # after the model: a crash between leaves a verified model
    return report


def build_candidates(job: Job, fp32: Path, work: Path) -> tuple[dict[str, Candidate], BuildContext]:
    """The requested mode's variant, or every auto candidate that changed something (fp32 first), and the
    context they were built in."""
    names = auto_candidates() if job.requested == AUTO else [job.requested]
    settings = job.settings
    calibration = CalibrationSample(
        job.train, settings.calibration_samples, settings.seed, job.dataset, job.spec, job.card.normalization
    )
    context = BuildContext(settings=settings, input_name=job.spec.name, calibration=calibration, judge=job.judge)
    candidates = {}
    for name in names:
        path = work / f"{name}.onnx"
        built = get_mode(name).build(fp32, path, context)
        if job.requested == AUTO and built.unchanged:  # the fp32 graph under another name
            continue
        candidates[name] = Candidate(path, built)
    return candidates, context


def gate_on_targets(
    job: Job, candidates: dict[str, Candidate], fp32: Path, context: BuildContext, out: Path
) -> dict[str, Verdict]:
    """With ``--targets``: each candidate on the targets, a failing static one rebuilt with the remedies
    (on_targets.py); those no remedy rescues leave ``candidates`` (in place). Without: nothing."""
    if not job.settings.targets:
        return {}
    gate = TargetGate.for_names(job.settings.targets, job.judge.reference, job.dataset, job.settings.max_accuracy_drop)
    verdicts = {}
    for name, candidate in list(candidates.items()):
        verdict = gate.verdict(name, candidate.path, candidate.built, rebuilder(name, fp32, context))
        verdicts[name] = verdict
        if verdict.path is None or verdict.built is None:
            del candidates[name]
            if job.requested != AUTO:
                raise refused_error(out, name, verdict)
            continue
        settings = {**verdict.built.settings, "targets_remedy": REMEDIES.get(verdict.remedy or "")}
        candidates[name] = Candidate(verdict.path, dataclasses.replace(verdict.built, settings=settings))
    if not candidates:
        reasons = " — ".join(f"{name}: {v.reason()}" for name, v in verdicts.items())
        raise ParityError(f"{out} not written: no variant passes on the targets: {reasons}")
    return verdicts


def pick(job: Job, candidates: dict[str, Candidate]) -> Choice:
    """The requested mode's file, or auto's choice among every candidate file on every available backend."""
    if job.requested != AUTO:
        return Choice(job.requested, candidates[job.requested], None)
    settings, reference = job.settings, job.judge.reference
    contenders = open_contenders(
        {name: c.path for name, c in candidates.items()},
        backends=available_backends(settings.backends),
        max_accuracy_drop=settings.max_accuracy_drop,
    )
    decision = choose_fastest(
        contenders,
        reference.feed,
        reference.labels,
        batch_size_hint=settings.batch_size_hint,
        max_accuracy_drop=settings.max_accuracy_drop,
        iters=settings.latency_iters,
    )
    mode = decision.row.mode
    return Choice(mode, candidates[mode], decision)


@contextlib.contextmanager
def gating_output(out: Path, choice: Choice) -> Iterator[None]:
    """Re-raise a failed gate naming the user's ``out`` and the mode: the candidate file the gate read
    lives in a temporary folder that is gone by the time anyone reads the message. A static variant
    whose calibration methods were all tried names each one's figures too."""
    mode = choice.mode
    try:
        yield
    except ParityError as exc:
        report = exc.report
        if report is None or not report.failures:  # the model did not run: its own message says why
            raise ParityError(f"{out} not written: {mode}: {exc}", report=report) from exc
        tried = describe_tried(choice.candidate.built.settings.get("calibration", {}))
        raise ParityError(
            f"{out} not written: {mode} disagrees with {reference_phrase(report.reference)} "
            f"on {report.samples} test images: " + "; ".join(report.failures) + (f" ({tried})" if tried else ""),
            report=report,
        ) from exc


def write(
    job: Job, out: Path, fp32: Path, choice: Choice, parity: ParityReport, verdicts: dict[str, Verdict]
) -> ExportReport:
    """The chosen variant with metadata describing THIS file at ``out`` (atomically, after a read-back)."""
    decision = choice.decision
    settings = {"mode": choice.mode, **choice.candidate.built.settings}
    if decision:
        settings["auto"] = decision.to_dict()
    chosen = verdicts.get(choice.mode)
    records = chosen.report.records() if chosen else {}
    meta = ModelMetadata(card=job.card, input=job.spec, quantization=settings, parity=parity.to_dict(), targets=records)
    with atomic_path(out) as final:
        write_metadata(onnx.load(str(choice.candidate.path)), meta, final)
        read_metadata(open_session(final), source=str(out))  # the runtime loads it and reads it back
        measured = measure_report(
            final=final,
            fp32=fp32,
            chosen=choice.candidate.path,
            feed=job.judge.reference.feed,
            iters=job.settings.latency_iters,
            batch_sizes=(1, job.settings.batch_size_hint),
            decision=decision,
        )
        report = _report(job, out, choice, settings, parity, measured)
    targets = {name: verdict.to_dict() for name, verdict in verdicts.items()}
    return dataclasses.replace(report, targets=targets) if targets else report


def _report(
    job: Job, out: Path, choice: Choice, settings: dict[str, Any], parity: ParityReport, measured: dict[str, Any]
) -> ExportReport:
    accuracy = {
        "fp32": parity.reference_accuracy,
        "exported": parity.onnx_accuracy,
        "delta_pp": parity.delta_accuracy_pp,
        "samples": parity.samples,
        "fp32_test_accuracy_at_training": job.card.test_accuracy,
    }
    return ExportReport(
        model=str(out),
        arch=job.card.arch,
        requested=job.requested,
        mode=choice.mode,
        input=job.spec,
        opset=job.opset,
        settings=settings,
        accuracy=accuracy,
        parity=parity,
        auto=choice.decision,
        warnings=(*job.notes, *choice.candidate.built.warnings),
        **measured,
    )
