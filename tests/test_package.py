"""The package surface, the dependency tiers and the size rules: the runtime side never needs torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, blocking_prelude, run_cli

import edgecnn

PACKAGE = REPO / "edgecnn"
TIER0_PACKAGES = ("runtime", "bench", "cli", "serve")  # plus every module at the top of edgecnn/
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 40


def test_public_names_are_explicit_and_importable():
    assert edgecnn.__all__ == sorted(set(edgecnn.__all__), key=edgecnn.__all__.index)  # no duplicates
    for name in edgecnn.__all__:
        assert hasattr(edgecnn, name), name
    public = {
        n
        for n, v in vars(edgecnn).items()
        if not n.startswith("_") and n != "annotations" and not isinstance(v, types.ModuleType)
    }
    assert public <= set(edgecnn.__all__), public - set(edgecnn.__all__)


def test_every_error_is_an_edgecnn_error():
    from edgecnn import errors

    for name in errors.__all__:
        if isinstance(getattr(errors, name), type):  # a warning is not an error: the run goes on
            assert issubclass(getattr(errors, name), UserWarning if name.endswith("Warning") else edgecnn.EdgeCNNError)


def test_errors_keep_their_cause_and_context():
    from edgecnn.errors import ModelFileError, ParityError, describe

    assert describe(ValueError("")) == "ValueError"
    assert (
        describe(RuntimeError("load failed\n  at x.cc:12\nUnsupported model IR version: 10"))
        == "load failed … Unsupported model IR version: 10"
    )
    long = "[ONNXRuntimeError] : 1 : FAIL : Load model failed:" + "/src/x" * 200 + " Unsupported model IR version: 10"
    assert describe(RuntimeError(long)).endswith("Unsupported model IR version: 10")  # the cause is never cut
    assert len(describe(RuntimeError(long))) < 700
    assert ModelFileError("x", path="m.onnx").path == Path("m.onnx")
    assert ParityError("x", report={"passed": False}).report == {"passed": False}


def test_tier0_modules_import_and_the_cli_runs_with_the_training_side_blocked():
    """Walks the tier-0 packages, so a new module is covered without anyone editing a list."""
    code = blocking_prelude() + (
        "import pkgutil, importlib, edgecnn\n"
        "names = [f'edgecnn.{m.name}' for m in pkgutil.iter_modules(edgecnn.__path__) if m.name != '__main__']\n"
        f"for package in {TIER0_PACKAGES!r}:\n"
        "    module = importlib.import_module(f'edgecnn.{package}')\n"
        "    names += [f'edgecnn.{package}.{m.name}' for m in pkgutil.iter_modules(module.__path__)]\n"
        "names.append('edgecnn.export.modes')  # the mode registry: read by the config and the CLI\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 20  # the walk really found the modules
    version = run_cli("--version", block_torch=True)
    assert version.returncode == 0 and version.stdout.startswith("edgecnn ")
    assert run_cli("--help", block_torch=True).returncode == 0


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_package_is_at_most_two_levels_deep():
    assert all(len(path.relative_to(PACKAGE).parts) <= 2 for path in _sources())


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_and_functions_stay_small(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.lineno} {node.name} is {length} lines"


def test_no_star_imports():
    for path in _sources():
        tree = ast.parse(path.read_text())
        assert not any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(tree))


def _build_wheel(source: Path, dest: Path) -> Path:
    """``pip wheel`` of a source tree or an sdist, as a user's pip builds it (no isolation: offline)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source), "-w", str(dest)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = dest.glob("edgecnn-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return _build_wheel(REPO, tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_every_module_its_license_and_a_page_without_repo_tools(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(REPO).as_posix() for p in _sources()}
    assert sources <= names, sources - names
    assert "edgecnn/py.typed" in names and any(n.endswith("licenses/LICENSE") for n in names)
    assert "edgecnn/runtime/web_logits.mjs" in names  # the wasm target's Node runner, for a pip-installed edgecnn
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: MIT" in metadata and "Typing :: Typed" in metadata
    page = metadata.split("\n\n", 1)[1]
    assert page.startswith("# edgecnn") and "tools/" not in page and "edgecnn[cpu]" in page
    assert "Requires-Dist: onnxruntime>=" in metadata and 'extra == "cpu"' in metadata
    assert not any(
        line.startswith("Requires-Dist: onnxruntime") and "extra" not in line for line in metadata.splitlines()
    )  # the core names no onnxruntime build


def test_the_wheel_ships_the_zoo_index_every_int8_model_and_every_default(wheel):
    import hashlib
    import json
    import zipfile

    index_path = REPO / "models" / "index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    archive = zipfile.ZipFile(wheel)
    assert archive.read("edgecnn/_zoo/index.json") == index_path.read_bytes()  # its SHA-256s still verify
    nets = index["nets"].values()
    int8 = {net["variants"]["int8"] for net in nets}
    defaults = {net["variants"][net["default"]] for net in nets}  # auto's choice: fp32 where int8 is not faster
    assert len(int8) == 6 and len(defaults) == 6, "every net's int8 file, and each one's default"
    for relative in int8 | defaults:
        data = archive.read(f"edgecnn/_zoo/{relative}")
        assert hashlib.sha256(data).hexdigest() == index["files"][relative]["sha256"], relative
    shipped = {n for n in archive.namelist() if n.startswith("edgecnn/_zoo/")}
    assert shipped == {"edgecnn/_zoo/index.json", *(f"edgecnn/_zoo/{r}" for r in int8 | defaults)}  # no cards
    assert wheel.stat().st_size <= 12 * 1024**2, f"the wheel is {wheel.stat().st_size / 1024**2:.1f} MiB"


def test_from_zoo_works_from_the_wheel_alone_without_torch(wheel, tmp_path, fashion):
    """The wheel unpacked as pip installs it, run from a folder with no checkout around: the zoo comes from
    the wheel's own copy, verified, and classifies real test images."""
    import json
    import zipfile

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    images = tmp_path / "images.npy"
    np.save(images, fashion.test_images[:200, 0].numpy())
    code = blocking_prelude() + (
        "import numpy as np\n"
        "from edgecnn.runtime import Predictor\n"
        "p = Predictor.from_zoo('keras_same')\n"
        "assert '/site/edgecnn/_zoo/' in str(p.path), p.path\n"
        "import json; print(json.dumps([r.label for r in p.predict(np.load('images.npy'))]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGECNN_ZOO")}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(site)}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    truth = [fashion.class_names[int(y)] for y in fashion.test_labels[:200]]
    labels = json.loads(proc.stdout)
    assert len(labels) == 200 and sum(a == b for a, b in zip(labels, truth, strict=True)) >= 180


def test_an_sdist_carries_the_zoo_and_its_wheel_ships_the_int8_models_only(tmp_path):
    """setup.py and MANIFEST.in on a copy of the source with a small zoo of its own (stand-in files: the
    packaging never parses them), built the way pip builds a downloaded sdist."""
    import tarfile
    import zipfile

    from edgecnn.errors import ModelFileError
    from edgecnn.files import write_json
    from edgecnn.runtime.zoo import resolve_zoo
    from edgecnn.runtime.zoo_index import ZooEntry, build_index

    source = _source_copy(tmp_path / "src")
    models, nets = source / "models", []
    for name in ("a", "b"):
        (models / name).mkdir(parents=True)
        for variant in ("fp32", "int8"):
            (models / name / f"{name}.{variant}.onnx").write_bytes(f"{name} {variant}".encode())
        nets.append(ZooEntry(name, "mnist", "s", "int8", {v: f"{name}/{name}.{v}.onnx" for v in ("fp32", "int8")}))
    (models / "a" / "card.md").write_text("# a\n")
    write_json(models / "index.json", build_index(models, nets, ["a/card.md"]).to_dict())
    code = "import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])"
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sdist")], cwd=source, capture_output=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (sdist,) = (tmp_path / "sdist").glob("edgecnn-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {"setup.py", "models/index.json", "models/a/a.int8.onnx", "models/b/b.int8.onnx"} <= members
    assert "models/a/a.fp32.onnx" in members and not any(m.endswith("card.md") for m in members)
    archive = zipfile.ZipFile(_build_wheel(sdist, tmp_path / "wheel"))
    shipped = sorted(n for n in archive.namelist() if n.startswith("edgecnn/_zoo/"))
    assert shipped == ["edgecnn/_zoo/a/a.int8.onnx", "edgecnn/_zoo/b/b.int8.onnx", "edgecnn/_zoo/index.json"]
    assert archive.read("edgecnn/_zoo/index.json") == (models / "index.json").read_bytes()
    archive.extractall(tmp_path / "installed", members=shipped)
    packaged = tmp_path / "installed" / "edgecnn" / "_zoo"
    assert resolve_zoo("zoo:b", packaged) == packaged / "b" / "b.int8.onnx"  # size and SHA-256 verified
    with pytest.raises(ModelFileError, match="the wheel ships only the int8 and the default models"):
        resolve_zoo("zoo:a:fp32", packaged)


def _source_copy(dest: Path) -> Path:
    """What the packaging reads of the repository: the package, its metadata and build files, the readme."""
    import shutil

    shutil.copytree(PACKAGE, dest / "edgecnn", ignore=shutil.ignore_patterns("__pycache__", "_zoo"))
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "LICENSE", "docs/PYPI.md"):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, dest / name)
    return dest
