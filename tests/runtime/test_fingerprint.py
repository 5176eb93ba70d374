"""The machine a choice was measured on: its fingerprint's fields, read back strictly, compared with this one, and
shown by `edgecnn info` (same, or which fields differ)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from pathlib import Path

import onnx
from conftest import run_cli

from edgecnn.runtime.fingerprint import KERNEL_FLAGS, Fingerprint, read_fingerprint, this_machine
from edgecnn.runtime.session import physical_cores
from edgecnn.runtime.zoo import resolve_zoo


def test_the_fingerprint_holds_what_picks_the_kernels_and_threads():
    machine = this_machine()
    cpuinfo = Path("/proc/cpuinfo").read_text()
    flags = set(cpuinfo.split("flags", 1)[1].split("\n", 1)[0].split(":", 1)[1].split())
    assert machine.flags == tuple(f for f in KERNEL_FLAGS if f in flags) and "avx2" in machine.flags
    assert machine.vendor in ("GenuineIntel", "AuthenticAMD") and machine.cpu in cpuinfo
    assert (machine.logical_cores, machine.physical_cores) == (os.cpu_count(), physical_cores())
    assert (machine.system, machine.machine) == (platform.system(), platform.machine())
    from importlib.metadata import version

    import onnxruntime

    assert machine.backends == {"onnxruntime": onnxruntime.__version__, "openvino": version("openvino")}
    assert read_fingerprint(json.loads(json.dumps(machine.to_dict()))) == machine  # through JSON, as in a file
    assert len(machine.key) == 16 and machine.key == this_machine().key


def test_another_cpu_with_the_same_flags_is_another_machine():
    mine = this_machine()
    epyc = dataclasses.replace(mine, vendor="AuthenticAMD", cpu="AMD EPYC 9B14")
    assert mine.differences(epyc) == ["vendor", "cpu"] and epyc.key != mine.key
    newer = dataclasses.replace(mine, backends={**mine.backends, "onnxruntime": "9.9.9"})
    assert mine.differences(newer) == ["backends"] and mine.differences(mine) == []
    for broken in (None, "x", {}, {**mine.to_dict(), "physical_cores": "two"}, {**mine.to_dict(), "flags": 3}):
        assert read_fingerprint(broken) is None  # a file's record is anyone's: malformed means unrecorded


def _with_recorded_machine(src, dst, machine: Fingerprint | None) -> None:
    model = onnx.load(str(src))
    for prop in model.metadata_props:
        if prop.key == "edgecnn.quantization":
            quantization = json.loads(prop.value)
            quantization["auto"]["machine"] = machine.to_dict() if machine else None
            prop.value = json.dumps(quantization, sort_keys=True)
    onnx.save(model, str(dst))


def test_info_says_where_auto_measured_and_whether_this_machine_is_the_same(tmp_path):
    zoo_file = resolve_zoo("zoo:keras_same")  # auto chose its int8 before machines were recorded
    shown = run_cli("info", str(zoo_file), block_torch=True)
    assert "auto measured   on a machine it did not record; this machine: cannot tell" in shown.stdout
    mine = this_machine()
    for name, machine, verdict in (
        ("here.onnx", mine, "this machine: same"),
        ("epyc.onnx", dataclasses.replace(mine, cpu="AMD EPYC 9B14"), "this machine: different (cpu)"),
    ):
        _with_recorded_machine(zoo_file, tmp_path / name, machine)
        text = run_cli("info", str(tmp_path / name), block_torch=True)
        assert text.returncode == 0, text.stderr
        line = next(line for line in text.stdout.splitlines() if line.startswith("auto measured"))
        assert machine.cpu in line and line.endswith(verdict)
        data = json.loads(run_cli("info", str(tmp_path / name), "--json", block_torch=True).stdout)["auto_machine"]
        assert data["recorded"] == machine.to_dict() and data["this"] == mine.to_dict()
        assert data["same"] is (machine == mine) and data["differs"] == mine.differences(machine)
