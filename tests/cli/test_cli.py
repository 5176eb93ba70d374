import json

import pytest
from conftest import run_cli

from edgecnn import __version__


def _one_error_line(proc, rc=1):
    assert proc.returncode == rc, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgecnn: error: ")
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"edgecnn {__version__}"


def test_archs_json_lists_the_registry_with_parameter_counts():
    proc = run_cli("archs", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["convnet5"]["parameters"] == 3_199_106
    assert rows["fashion_bn"]["input_shape"] == [1, 28, 28]
    assert "tiny" in rows


def test_train_json_and_the_four_files(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "train",
        "--arch",
        "tiny",
        "--dataset",
        "mnist",
        "--epochs",
        "1",
        "--limit-train",
        "3000",
        "--batch-size",
        "50",
        "--out",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # stdout holds the JSON and nothing else
    assert summary["test_accuracy"] > 0.3 and summary["best_epoch"] == 1
    assert summary["val_accuracy"] == summary["epochs"][-1]["val_accuracy"] > 0.3
    for name in ("checkpoint.pt", "metrics.json", "curves.png", "confusion.png"):
        assert (out / name).is_file()
    assert proc.stderr == ""  # not a TTY: no progress bar

    # --resume takes the saved settings; only --epochs is new
    more = run_cli("train", "--out", str(out), "--resume", "--epochs", "2", "--json")
    assert more.returncode == 0, more.stderr
    assert [e["epoch"] for e in json.loads(more.stdout)["epochs"]] == [1, 2]

    clash = run_cli("train", "--out", str(out), "--resume", "--arch", "convnet5")
    assert "arch" in _one_error_line(clash)


def test_bad_arch_lists_valid_names(tmp_path):
    line = _one_error_line(run_cli("train", "--arch", "vgg16", "--out", str(tmp_path)))
    assert "vgg16" in line and "fashion_bn" in line and "keras_same" in line


def test_bad_dataset_path(tmp_path):
    line = _one_error_line(run_cli("train", "--dataset", str(tmp_path / "nowhere"), "--out", str(tmp_path)))
    assert "nowhere" in line


def test_missing_data(tmp_path):
    proc = run_cli(
        "train",
        "--arch",
        "tiny",
        "--dataset",
        "mnist",
        "--out",
        str(tmp_path / "o"),
        env={"EDGECNN_DATA": str(tmp_path / "empty")},
    )
    line = _one_error_line(proc)
    assert str(tmp_path / "empty") in line and "EDGECNN_DATA" in line
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


def test_resume_with_nothing_to_resume(tmp_path):
    assert "no checkpoint" in _one_error_line(run_cli("train", "--out", str(tmp_path), "--resume"))


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--optimizer", "lbfgs", "--out", "x"],
        ["train"],
        ["train", "--epochs", "many", "--out", "x"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(args):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr


def test_invalid_values_are_one_line_exit_1(tmp_path):
    line = _one_error_line(run_cli("train", "--epochs", "0", "--out", str(tmp_path)))
    assert "epochs" in line


def test_ctrl_c_keeps_the_last_epoch_and_resume_finishes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from edgecnn.training.checkpoint import load_checkpoint

    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgecnn",
            "train",
            "--arch",
            "tiny",
            "--dataset",
            "mnist",
            "--epochs",
            "200",
            "--limit-train",
            "1000",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
        # a suite started in the background (`cmd &` in a script) inherits SIGINT ignored, and Python then
        # never turns Ctrl-C into KeyboardInterrupt: give the child the default a terminal user has
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr and stdout == ""
    done = load_checkpoint(out).epoch
    assert done >= 1 and done < 200
    resumed = run_cli("train", "--out", str(out), "--resume", "--epochs", str(done + 1), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert len(json.loads(resumed.stdout)["epochs"]) == done + 1


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--lr", "inf", "--out", "x"],
        ["train", "--seed", str(2**70), "--out", "x"],
        ["train", "--lr", "nan", "--out", "x"],
        ["train", "--batch-size", "0", "--out", "x"],
    ],
)
def test_out_of_range_numbers_are_one_line_exit_1(args, tmp_path):
    line = _one_error_line(run_cli(*args, cwd=tmp_path))
    assert args[1].lstrip("-").replace("-", "_") in line
    assert not (tmp_path / "x").exists()


def test_ctrl_c_before_any_epoch_does_not_suggest_resume(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import edgecnn.training.loop as loop
    from edgecnn.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "fit", interrupted)
    result = CliRunner().invoke(main, ["train", "--arch", "tiny", "--out", str(tmp_path / "run")])
    assert result.exit_code == 130
    assert "--resume" not in result.output and "nothing was saved" in result.output
