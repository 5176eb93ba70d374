"""`edgecnn bundle --target web` in a real browser: Debian's Chromium, headless, opens the bundle from a static
server on 127.0.0.1 (bounded in time, stopped by the test) and classifies the bundled samples — real test images,
a light-background photo, a small off-centre one and a JPEG rotated by its EXIF tag — with onnxruntime-web's
WebAssembly kernels and the JavaScript framing. Every label must be the Predictor's on this machine and every
probability within the gate; the page loads every runtime file shipped, and nothing is missing."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import run_cli

from edgecnn.export.browser import HEADLESS, browser_selftest, chromium

CHROMIUM = chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (tools/setup_browser.sh)")
PROBABILITY_GATE = 1e-3  # float32 softmax in the page against the Predictor's: measured ≤ 2e-7 on fashion_bn


@pytest.mark.parametrize("model", ["zoo:fashion_bn", "zoo:keras_valid:fp32"])
def test_the_browser_gives_the_predictors_answers(tmp_path, model):
    out = tmp_path / "site"
    result = run_cli("bundle", model, "--target", "web", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    selftest = browser_selftest(out)
    answers, requests = selftest.answers, selftest.requests
    assert "error" not in answers, answers
    assert set(answers) == {sample["file"] for sample in report["samples"]}
    for sample in report["samples"]:
        got = answers[sample["file"]]
        assert got["label"] == sample["label"], (sample, got)
        assert abs(got["probability"] - sample["probability"]) <= PROBABILITY_GATE, (sample, got)
    fetched = {path.lstrip("/") for _, path, _ in requests}
    shipped = {name for name in report["bytes"]["files"] if name.startswith("ort/")}
    assert shipped <= fetched, shipped - fetched  # ship only what the page loads
    assert all(status in (200, 204, 304) for _, _, status in requests), requests


def test_opened_from_a_file_the_page_says_how_to_serve_it(tmp_path):
    out = tmp_path / "site"
    assert run_cli("bundle", "zoo:fashion_bn", "--target", "web", "--out", str(out)).returncode == 0
    dom = subprocess.run(
        [CHROMIUM, *HEADLESS, "--dump-dom", (out / "index.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "python3 -m http.server" in dom and "file://" in dom


def test_a_folder_of_other_files_is_not_overwritten(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = run_cli("bundle", "zoo:fashion_bn", "--target", "web", "--out", str(tmp_path / "mine"))
    assert result.returncode == 1 and "not a bundle" in result.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_the_wasm_check_target_and_the_browser_give_the_same_numbers(tmp_path):
    """The same onnxruntime-web kernels, run by `edgecnn check`'s wasm target (Node) on the samples as the
    Predictor frames them, and by the bundle's page in Chromium: the same probabilities."""
    from edgecnn.runtime import Predictor
    from edgecnn.runtime.scores import softmax
    from edgecnn.runtime.target_run import target_logits
    from edgecnn.runtime.targets import get_target, readiness

    state = readiness(get_target("wasm"))
    if not state.ready:  # tools/test.sh sets it up; only a machine where that cannot run skips
        (pytest.fail if os.geteuid() == 0 else pytest.skip)(f"the wasm target is not ready: {state.why}")
    out = tmp_path / "site"
    assert run_cli("bundle", "zoo:keras_same", "--target", "web", "--out", str(out)).returncode == 0
    report = json.loads((out / "bundle.json").read_text())
    browser = browser_selftest(out).answers
    predictor = Predictor(out / "model.onnx", backend="onnxruntime")
    feed = predictor.prepare([str(out / sample["file"]) for sample in report["samples"]])
    logits, ran = target_logits(get_target("wasm"), out / "model.onnx", feed, 1)
    assert ran["runtime"] == "onnxruntime-web"
    for sample, probabilities in zip(report["samples"], softmax(logits), strict=True):
        got = browser[sample["file"]]
        assert report["preprocessing"]["classes"][int(probabilities.argmax())] == got["label"]
        assert abs(float(probabilities.max()) - got["probability"]) <= 1e-5, (sample, got)


def test_the_users_own_samples_are_bundled_and_answered_as_the_predictor_answers(tmp_path, data_root):
    from PIL import Image

    from edgecnn.bench.framings import frame_all
    from edgecnn.data.builtin import read_builtin

    photos = tmp_path / "photos"
    (photos / "more").mkdir(parents=True)
    images = read_builtin("fashion-mnist", "test", data_root).images[100:104, 0]
    for i, photo in enumerate(frame_all(images, "phone JPEG", seed=3)):
        photo.save(photos / ("more" if i % 2 else "") / f"shot{i}.jpg")
    Image.fromarray(images[0]).save(photos / "plain.png")
    out = tmp_path / "site"
    result = run_cli(
        "bundle", "zoo:fashion_bn", "--target", "web", "--out", str(out), "--samples", str(photos), "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["samples"]) == 5 and all(s["file"].startswith("samples/") for s in report["samples"])
    answers = browser_selftest(out).answers
    for sample in report["samples"]:
        assert answers[sample["file"]]["label"] == sample["label"]
        assert abs(answers[sample["file"]]["probability"] - sample["probability"]) <= PROBABILITY_GATE


def test_a_sample_that_cannot_be_read_fails_the_bundle_and_leaves_nothing(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    result = run_cli(
        "bundle", "zoo:fashion_bn", "--target", "web", "--out", str(tmp_path / "site"), "--samples", str(photos)
    )
    assert result.returncode == 1 and "broken.png" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no bundle, nothing half-made beside it
