"""Every Python block of README.md (and of the wheel's page, docs/PYPI.md) runs, in order, as a reader
would run them: in a fresh folder, on the real datasets, the device-app blocks with torch blocked."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO, blocking_prelude
from PIL import Image

from edgecnn.bench.framings import frame_all

DEVICE_SECTION = "## Embed in a device app"
SERVER_SECTION = "## Serve"  # its blocks talk to a running server: tests/serve/test_readme_serve.py runs them


def _blocks(text: str) -> list[tuple[str, bool]]:
    """(code, runs on a device install) for every ```python block, in order."""
    blocks = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        heading = [h for h in re.findall(r"^## .*$", text[: match.start()], re.M)][-1:]
        if heading != [SERVER_SECTION]:
            blocks.append((match.group(1), heading == [DEVICE_SECTION]))
    return blocks


def _run(code: str, cwd, device: bool) -> subprocess.CompletedProcess[str]:
    prelude = blocking_prelude() if device else ""
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=900,
    )


def test_every_readme_python_block_runs(tmp_path, fashion):
    blocks = _blocks((REPO / "README.md").read_text())
    assert len(blocks) >= 2 and any(device for _, device in blocks)
    garment = frame_all(fashion.test_images[:1, 0].numpy(), "white margin")[0]  # a shirt on white paper
    garment.save(tmp_path / "photo.png")
    for number, (code, device) in enumerate(blocks, 1):
        proc = _run(code, tmp_path, device)
        assert proc.returncode == 0, f"README block {number}:\n{code}\n{proc.stderr[-3000:]}"
    assert (tmp_path / "fbn.onnx").is_file()


def test_the_wheel_page_block_runs_on_a_device_install(tmp_path, fashion, checkpoints):
    from edgecnn.config import ExportConfig
    from edgecnn.export.job import export_checkpoint

    export_checkpoint(
        checkpoints("fashion_bn", "fashion-mnist"),
        tmp_path / "model.onnx",
        ExportConfig(parity_samples=300, latency_iters=3),
    )
    Image.fromarray(255 - fashion.test_images[0, 0].numpy()).save(tmp_path / "photo.jpg")
    blocks = _blocks((REPO / "docs" / "PYPI.md").read_text())
    assert blocks
    for code, _ in blocks:
        proc = _run(code, tmp_path, device=True)
        assert proc.returncode == 0, f"{code}\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize("page", ["README.md", "docs/PYPI.md"])
def test_pages_name_no_module_that_does_not_exist(page):
    import importlib

    text = (REPO / page).read_text()
    for module in sorted(set(re.findall(r"\bfrom (edgecnn[\w.]*) import", text))):
        importlib.import_module(module)
