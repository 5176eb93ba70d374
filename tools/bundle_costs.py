"""What each zoo file costs as a mobile bundle: `edgecnn bundle --target mobile` on every zoo net's fp32 and int8
files, into BENCHMARKS.md "What each target costs".

    .venv/bin/python tools/bundle_costs.py [--no-write]

Per file: the .onnx and .ort bytes, the operators a reduced onnxruntime build must include, parameters, MACs
and peak activation memory at batch 1 (export/costs.py: the graph as onnxruntime runs it), the .ort file's
batch-1 median on this machine with one thread, and its top-1 agreement with the .onnx on the model's probe
images (1,000 real test images). Each bundle is written to a temporary folder and checked as the command checks
it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from edgecnn.export.mobile import bundle_mobile
from edgecnn.runtime.zoo import resolve_zoo
from edgecnn.runtime.zoo_index import load_index

HEADER = (
    "| file | .onnx bytes | .ort bytes | reduced-build operators | parameters | MACs | peak activations | "
    ".ort b1 p50 ms here | agreement with .onnx |"
)


def rows() -> list[str]:
    out = []
    index = load_index(Path(__file__).resolve().parents[1] / "models")
    for net in index.nets:
        for variant in ("fp32", "int8"):
            with tempfile.TemporaryDirectory(prefix="edgecnn-bundle-costs-") as tmp:
                report = bundle_mobile(resolve_zoo(f"zoo:{net}:{variant}"), Path(tmp) / "b", say=lambda _: None)
            costs, size = report["costs"], report["bytes"]
            out.append(
                f"| {net} {variant} | {size['onnx']:,} | {size['ort']:,} | {report['reduced_build']['operators']} "
                f"| {costs['parameters']:,} | {costs['macs']:,} | {costs['peak_activation_bytes'] / 1024:,.0f} KiB "
                f"| {report['latency_ms_here']['p50']:.3f} | {report['parity']['top1_agreement']:.2%} |"
            )
            print(out[-1], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    print(HEADER)
    table = rows()
    if args.no_write:
        return
    from benchmarks import _provenance, write_section

    from edgecnn.bench.environment import environment

    provenance = _provenance(environment()).replace("tools/benchmarks.py", "tools/bundle_costs.py")
    body = "\n".join([provenance, "", __doc__.split("\n\n", 2)[2].strip(), "", HEADER, "|---" * 9 + "|", *table])
    write_section("bundle-costs", "## What each target costs: the zoo as mobile bundles", body)


if __name__ == "__main__":
    main()
