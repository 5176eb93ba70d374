"""What each zoo file costs as a bundle: `edgecnn bundle --target mobile` and `--target web` on every zoo net's
fp32 and int8 files, into BENCHMARKS.md "What each target costs".

    .venv/bin/python tools/bundle_costs.py [--no-write]

Per file: the .onnx and .ort bytes, the operators a reduced onnxruntime build must include, parameters, MACs
and peak activation memory at batch 1 (export/costs.py: the graph as onnxruntime runs it), the .ort file's
batch-1 median on this machine with one thread, and its top-1 agreement with the .onnx on the model's probe
images (1,000 real test images). Web: the folder's bytes (onnxruntime-web's two files, the model, the page), and
the page's self-test in headless Chromium (WebAssembly, one thread): its nine samples' labels against the
Predictor's on this machine, the largest probability difference, and the median model call in the browser
(performance.now() around session.run; the first call, which compiles, left out). Each bundle is written to a
temporary folder and checked as the command checks it.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgecnn.export.mobile import bundle_mobile
from edgecnn.runtime.zoo import resolve_zoo
from edgecnn.runtime.zoo_index import load_index

HEADER = (
    "| file | .onnx bytes | .ort bytes | reduced-build operators | parameters | MACs | peak activations | "
    ".ort b1 p50 ms here | agreement with .onnx |"
)


def zoo_files() -> Iterator[tuple[str, Path, Path]]:
    """("NET VARIANT", the zoo file, an empty temporary folder for its bundle) for every zoo file."""
    index = load_index(Path(__file__).resolve().parents[1] / "models")
    for net in index.nets:
        for variant in ("fp32", "int8"):
            with tempfile.TemporaryDirectory(prefix="edgecnn-bundle-costs-") as tmp:
                yield f"{net} {variant}", resolve_zoo(f"zoo:{net}:{variant}"), Path(tmp) / "bundle"


def rows() -> list[str]:
    out = []
    for name, model, folder in zoo_files():
        report = bundle_mobile(model, folder, say=lambda _: None)
        costs, size = report["costs"], report["bytes"]
        out.append(
            f"| {name} | {size['onnx']:,} | {size['ort']:,} | {report['reduced_build']['operators']} "
            f"| {costs['parameters']:,} | {costs['macs']:,} | {costs['peak_activation_bytes'] / 1024:,.0f} KiB "
            f"| {report['latency_ms_here']['p50']:.3f} | {report['parity']['top1_agreement']:.2%} |"
        )
        print(out[-1], flush=True)
    return out


WEB_HEADER = (
    "| file | bundle bytes | onnxruntime-web bytes | model bytes | labels as the Predictor | max Δprobability | "
    "browser call p50 ms |"
)


def web_rows() -> list[str]:
    from edgecnn.export.browser import browser_selftest
    from edgecnn.export.web import bundle_web

    out = []
    for name, model, folder in zoo_files():
        report = bundle_web(model, folder, say=lambda _: None)
        selftest = browser_selftest(folder)
        answers = selftest.answers
        same = sum(answers[s["file"]]["label"] == s["label"] for s in report["samples"])
        delta = max(abs(answers[s["file"]]["probability"] - s["probability"]) for s in report["samples"])
        size = report["bytes"]
        out.append(
            f"| {name} | {size['total']:,} | {size['runtime']:,} | {size['model']:,} "
            f"| {same}/{len(report['samples'])} | {delta:.1e} | {selftest.timing['p50_ms']:.2f} |"
        )
        print(out[-1], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    print(HEADER)
    table = rows()
    print(WEB_HEADER)
    web = web_rows()
    if args.no_write:
        return
    from benchmarks import _provenance, write_section

    from edgecnn.bench.environment import environment

    provenance = _provenance(environment()).replace("tools/benchmarks.py", "tools/bundle_costs.py")
    body = "\n".join(
        [provenance, "", __doc__.split("\n\n", 2)[2].strip(), "", "Mobile (ORT format):", "", HEADER, "|---" * 9 + "|"]
        + [*table, "", "Web (onnxruntime-web, WebAssembly, one thread; Chromium headless):", "", WEB_HEADER]
        + ["|---" * 7 + "|", *web]
    )
    write_section("bundle-costs", "## What each target costs: the zoo as mobile and web bundles", body)


if __name__ == "__main__":
    main()
