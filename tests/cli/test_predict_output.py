"""`edgecnn predict --output` without Ray: every file's row in CSV, JSONL or Parquet, errors as rows, written
atomically; a run's parts resumed, and a run with another model refused (real zoo models, real test images)."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from PIL import Image

from edgecnn.data.builtin import read_builtin
from edgecnn.errors import ConfigError
from edgecnn.runtime import Predictor
from edgecnn.runtime.result_files import ResultFile, error_row


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data_root):
    root = tmp_path_factory.mktemp("shots")
    images = read_builtin("fashion-mnist", "test", data_root).images[:40, 0]
    for i, image in enumerate(images):
        Image.fromarray(image).save(root / f"{i:03d}.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


def _rows(path):
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if path.suffix == ".csv":
        return [{**r, "top_k": json.loads(r["top_k"])} for r in csv.DictReader(path.open())]
    return [{**r, "top_k": json.loads(r["top_k"])} for r in pq.read_table(path).to_pylist()]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_every_file_is_one_row_with_the_predictors_answer(folder, tmp_path, suffix):
    output = tmp_path / f"rows{suffix}"
    result = run_cli("predict", "zoo:fashion_bn", str(folder), "--top-k", "2", "--output", str(output))
    assert result.returncode == 1 and "41 row(s)" in result.stderr and "1 with an error" in result.stderr
    rows = _rows(output)
    assert [r["file"] for r in rows] == sorted(str(p) for p in folder.iterdir())
    expected = Predictor.from_zoo("fashion_bn").predict(sorted(str(p) for p in folder.glob("0*.png")), top_k=2)
    for row, prediction in zip(rows[:-1], expected, strict=True):
        assert row["label"] == prediction.label and len(row["top_k"]) == 2 and not row["error"]
    assert rows[-1]["error"].startswith(str(folder / "broken.png")) and rows[-1]["label"] == ""
    assert not (tmp_path / f"rows{suffix}.parts").exists()


def test_a_kept_part_is_not_classified_again_and_another_model_is_refused(folder, tmp_path):
    output = tmp_path / "rows.jsonl"
    run = {"model_sha256": "x", "top_k": 1}
    kept = ResultFile(output, run)
    kept.add([error_row(str(folder / "000.png"), "kept from the first run")])  # as a killed run leaves it
    with pytest.raises(ConfigError, match="model_sha256"):
        ResultFile(output, {**run, "model_sha256": "y"})
    again = ResultFile(output, run)
    assert again.done == {str(folder / "000.png")}
    with pytest.raises(ConfigError, match="have no row"):
        again.finish([str(folder / "000.png"), str(folder / "001.png")])  # one missing: nothing written
    assert not output.exists()
    assert again.finish([str(folder / "000.png")]) == 1 and _rows(output)[0]["error"] == "kept from the first run"


def test_engine_options_without_ray_and_an_unknown_format_are_refused(folder, tmp_path):
    result = run_cli("predict", "zoo:fashion_bn", str(folder), "--replicas", "2")
    assert result.returncode == 1 and "need --engine ray" in result.stderr
    result = run_cli("predict", "zoo:fashion_bn", str(folder), "--output", str(tmp_path / "rows.txt"))
    assert result.returncode == 1 and ".csv, .jsonl or .parquet" in result.stderr
    result = run_cli("serve", "zoo:fashion_bn", "--engine", "ray", "--max-requests", "5")
    assert result.returncode == 1 and "--stop-after" in result.stderr
