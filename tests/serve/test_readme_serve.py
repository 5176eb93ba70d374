"""The serving page, docs/serving.md, runs as written: its curl lines and its tritonclient block, against a real
`edgecnn serve` of the models its first command names (on a free port in place of 8000), with a real test image
as shirt.png, each answer checked. (tests/test_docs.py runs the other pages' blocks.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import REPO
from PIL import Image
from serving import fashion_test_images, running_server

from edgecnn.runtime import Predictor

PAGE = REPO / "docs" / "serving.md"


def test_the_serving_page_runs_against_a_real_server(tmp_path):
    section = PAGE.read_text()
    first = re.search(r"^edgecnn serve (\S+) (\S+)", section, re.M)
    assert first, "the section starts a server"
    images = fashion_test_images()[0]
    Image.fromarray(images[0]).save(tmp_path / "shirt.png")
    curls = [line for line in re.findall(r"^curl .*$", section, re.M)]
    [code] = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(curls) >= 3
    with running_server(first[1], first[2]) as server:
        outputs = []
        for line in curls:
            command = line.split("  #")[0].replace("localhost:8000", server.url)
            done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, (line, done.stderr)
            outputs.append(json.loads(done.stdout))
        code = code.replace("localhost:8000", server.url)
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert server.stop() == 0
    expected = Predictor.from_zoo("keras_same").predict(Image.open(tmp_path / "shirt.png"), top_k=3)[0]
    classified = [o for o in outputs if isinstance(o, dict) and "predictions" in o]
    assert classified and all(p["label"] == expected.label for o in classified for p in o["predictions"])
    assert done.stdout.split()[0] == "True" and done.stdout.strip().endswith(f"[{expected.index}]")
