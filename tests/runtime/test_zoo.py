"""The model zoo by name: the index schema, the search order, the SHA-256 gate and Predictor.from_zoo, on a
small real zoo built here from the tiny net trained on real MNIST and exported for real (fp32 and int8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import edgecnn
from edgecnn.config import ExportConfig
from edgecnn.errors import ConfigError, ModelFileError
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.files import file_sha256, write_json
from edgecnn.runtime import Predictor, predictor, zoo
from edgecnn.runtime.zoo import is_zoo_spec, list_zoo, parse_zoo_spec, resolve_zoo, zoo_dirs
from edgecnn.runtime.zoo_index import INDEX_NAME, ZOO_FORMAT, ZooEntry, build_index, load_index

NAME = "testnet"  # not a name the real zoo uses, so a checkout's models/ cannot answer for it


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    """The tiny net (trained one epoch on real MNIST), exported fp32 and static int8, as tests/bench does."""
    out = tmp_path_factory.mktemp("zoo-exports")
    quick = dict(parity_samples=300, latency_iters=3)
    export_checkpoint(checkpoints("tiny"), out / "fp32.onnx", ExportConfig(**quick))
    export_checkpoint(checkpoints("tiny"), out / "int8.onnx", ExportConfig(quantize="static", **quick))
    return out


def make_zoo(folder: Path, exported: Path, variants=("fp32", "int8"), *, keep=None, default="int8") -> Path:
    """A zoo folder: NAME's files and an index with their real SHA-256s; then only ``keep`` stay on disk."""
    paths = {variant: f"{NAME}/{NAME}.{variant}.onnx" for variant in variants}
    (folder / NAME).mkdir(parents=True)
    for variant, relative in paths.items():
        shutil.copyfile(exported / f"{variant}.onnx", folder / relative)
    (folder / NAME / "card.md").write_text("# testnet\n")
    entry = ZooEntry(NAME, "mnist", "the tiny test net", default, paths, "static", {"fp32": 0.5, "int8": 0.49})
    write_json(folder / INDEX_NAME, build_index(folder, [entry], [f"{NAME}/card.md"]).to_dict())
    for variant in set(variants) - set(keep or variants):
        (folder / paths[variant]).unlink()
    return folder


@pytest.fixture
def full(tmp_path, exported):
    return make_zoo(tmp_path / "zoo", exported)


@pytest.fixture
def no_default_zoo(monkeypatch, tmp_path):
    """No $EDGECNN_ZOO, and a checkout and a wheel without a zoo: only what a test sets up is found."""
    monkeypatch.delenv("EDGECNN_ZOO", raising=False)
    monkeypatch.setattr(zoo, "_checkout_zoo", lambda: tmp_path / "no-checkout-zoo")
    monkeypatch.setattr(zoo, "_wheel_zoo", lambda: tmp_path / "no-wheel-zoo")


def test_specs():
    assert is_zoo_spec("zoo:x") and not is_zoo_spec("x.onnx") and not is_zoo_spec(Path("zoo:x"))
    assert parse_zoo_spec("zoo:a") == ("a", None) and parse_zoo_spec("zoo:a:fp32") == ("a", "fp32")
    for bad, message in [
        ("zoo:", "names no model"),
        ("zoo::int8", "names no model"),
        ("zoo:a:", "unknown variant ''"),
        ("zoo:a:fp16", "unknown variant 'fp16'; the variants are fp32, int8"),
        ("zoo:a:int8:x", "unknown variant 'int8:x'"),
        ("a.onnx", "not a zoo model"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_zoo_spec(bad)


def test_resolve_default_fp32_and_int8(full):
    assert resolve_zoo(f"zoo:{NAME}", full) == full / NAME / f"{NAME}.int8.onnx"  # the net's default
    assert resolve_zoo(f"zoo:{NAME}:int8", full) == full / NAME / f"{NAME}.int8.onnx"
    assert resolve_zoo(f"zoo:{NAME}:fp32", str(full)) == full / NAME / f"{NAME}.fp32.onnx"
    index = load_index(full)
    assert index.to_dict() == json.loads((full / INDEX_NAME).read_text())  # the schema round-trips
    assert index.files[f"{NAME}/card.md"].size == len("# testnet\n")


def test_unknown_net_and_variant_list_the_valid_ones(full, tmp_path, exported):
    with pytest.raises(ConfigError, match=rf"unknown zoo model 'nope'; known: {NAME} \(searched {full}\)"):
        resolve_zoo("zoo:nope", full)
    with pytest.raises(ConfigError, match="unknown variant 'fp16'; the variants are fp32, int8"):
        resolve_zoo(f"zoo:{NAME}:fp16", full)
    int8_only = make_zoo(tmp_path / "int8-only", exported, ("int8",))
    with pytest.raises(ConfigError, match=f"zoo model '{NAME}' has no fp32 variant; it has int8"):
        resolve_zoo(f"zoo:{NAME}:fp32", int8_only)


@pytest.mark.parametrize("damage", ["flip", "append"])
def test_a_tampered_file_is_refused_and_never_opened(full, monkeypatch, damage):
    path = full / NAME / f"{NAME}.int8.onnx"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data += b"\0"
    path.write_bytes(bytes(data))

    def never(*args, **kwargs):
        raise AssertionError("a file that failed its check was handed to onnxruntime")

    monkeypatch.setattr(predictor, "create_session", never)
    check = "SHA-256 check" if damage == "flip" else "size check"
    for attempt in (
        lambda: resolve_zoo(f"zoo:{NAME}", full),
        lambda: Predictor.from_zoo(NAME, zoo_dir=full),
    ):
        with pytest.raises(ModelFileError, match=f"fails its {check}.*a damaged or tampered copy") as caught:
            attempt()
        assert caught.value.path == path and "\n" not in str(caught.value)
    assert file_sha256(path) in str(caught.value) or damage == "append"


@pytest.mark.parametrize(
    "bad", ["../evil.onnx", "/tmp/evil.onnx", f"{NAME}/../../evil.onnx", "a\\evil.onnx", "C:/evil.onnx", "./x", "a//b"]
)
def test_an_index_pointing_outside_its_folder_is_refused(tmp_path, bad):
    folder = tmp_path / "zoo"
    folder.mkdir()
    (tmp_path / "evil.onnx").write_bytes(b"outside")
    sha = file_sha256(tmp_path / "evil.onnx")
    index = {
        "format": ZOO_FORMAT,
        "nets": {NAME: {"dataset": "mnist", "summary": "s", "default": "int8", "variants": {"int8": bad}}},
        "files": {bad: {"sha256": sha, "size": 7}},
    }
    (folder / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(ModelFileError, match="could point outside the zoo folder"):
        load_index(folder)
    with pytest.raises(ModelFileError, match="could point outside the zoo folder"):
        resolve_zoo(f"zoo:{NAME}", folder)
    with pytest.raises(ModelFileError, match="could point outside"):
        build_index(folder, [ZooEntry(NAME, "mnist", "s", "int8", {"int8": bad})])


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="edgecnn-zoo-2"), "format 'edgecnn-zoo-2' is not 'edgecnn-zoo-1'"),
        (lambda d: d.pop("format"), "format None is not"),
        (lambda d: d.update(extra=1), "the index has unknown keys 'extra'"),
        (lambda d: d["nets"][NAME].update(arch="tiny"), f"net '{NAME}' has unknown keys 'arch'"),
        (lambda d: d["nets"][NAME].pop("dataset"), f"net '{NAME}' lacks dataset"),
        (lambda d: d["nets"][NAME].update(default="fp16"), "default 'fp16' is not one of its variants"),
        (lambda d: d["nets"][NAME]["variants"].update(fp16="x.onnx"), "variant 'fp16' is not one of fp32, int8"),
        (lambda d: d["files"].pop(f"{NAME}/{NAME}.fp32.onnx"), 'is not listed in "files"'),
        (lambda d: d["files"][f"{NAME}/card.md"].update(sha256="ABC"), "sha256 must be 64 lowercase hex"),
        (lambda d: d["files"][f"{NAME}/card.md"].update(size=True), "size must be a whole number"),
        (lambda d: d["nets"][NAME]["test_accuracy"].update(int8=91.9), "must be a fraction from 0 to 1"),
        (lambda d: d["nets"].update({"a:b": d["nets"][NAME]}), "net name 'a:b' must be"),
        (lambda d: d.update(nets=[]), '"nets" must be a JSON object'),
    ],
)
def test_an_invalid_index_is_one_clear_model_file_error(full, change, message):
    _edit(full / INDEX_NAME, change)
    with pytest.raises(ModelFileError, match=message) as caught:
        resolve_zoo(f"zoo:{NAME}", full)
    assert caught.value.path == full / INDEX_NAME and str(caught.value).startswith(f"zoo index {full / INDEX_NAME}")


def test_unreadable_or_absent_index(tmp_path):
    with pytest.raises(ModelFileError, match="is not a model zoo: it holds no index.json"):
        resolve_zoo(f"zoo:{NAME}", tmp_path)
    (tmp_path / INDEX_NAME).write_text("{not json")
    with pytest.raises(ModelFileError, match="cannot read the zoo index"):
        load_index(tmp_path)


def test_predictor_from_zoo_gives_the_logits_of_the_file(full, monkeypatch, mnist):
    x = Predictor(full / NAME / f"{NAME}.fp32.onnx").prepare(mnist.test_images[:16, 0].numpy(), fit="stretch")
    for variant in ("fp32", "int8"):
        direct = Predictor(full / NAME / f"{NAME}.{variant}.onnx")
        named = Predictor.from_zoo(NAME, variant, zoo_dir=full, provider="cpu")
        assert named.path == direct.path and named.provider == "cpu"
        np.testing.assert_array_equal(named.logits(x), direct.logits(x))
    monkeypatch.setenv("EDGECNN_ZOO", str(full))
    assert Predictor(f"zoo:{NAME}").path == full / NAME / f"{NAME}.int8.onnx"  # a spec where a path goes
    assert Predictor.from_zoo(f"zoo:{NAME}", "fp32").path == full / NAME / f"{NAME}.fp32.onnx"


def test_a_variant_the_wheel_lacks_says_where_to_get_it(tmp_path, exported, no_default_zoo, monkeypatch):
    wheel = make_zoo(tmp_path / "wheel", exported, keep=("int8",))
    monkeypatch.setattr(zoo, "_wheel_zoo", lambda: wheel)
    assert zoo_dirs() == [wheel]
    assert resolve_zoo(f"zoo:{NAME}") == wheel / NAME / f"{NAME}.int8.onnx"
    with pytest.raises(ModelFileError, match="ships only the int8 and the default models: pass --zoo-dir") as caught:
        resolve_zoo(f"zoo:{NAME}:fp32")
    assert "\n" not in str(caught.value) and caught.value.path == wheel / NAME / f"{NAME}.fp32.onnx"
    (row,) = list_zoo()
    assert row.available == ("int8",) and row.files["fp32"] is None and row.sizes["fp32"] > 0


def test_search_order_env_then_checkout_then_wheel(tmp_path, exported, no_default_zoo, monkeypatch):
    env = make_zoo(tmp_path / "env", exported, keep=("int8",))
    checkout = make_zoo(tmp_path / "checkout", exported)
    wheel = make_zoo(tmp_path / "wheel", exported)
    monkeypatch.setattr(zoo, "_checkout_zoo", lambda: checkout)
    monkeypatch.setattr(zoo, "_wheel_zoo", lambda: wheel)
    assert zoo_dirs() == [checkout, wheel]
    monkeypatch.setenv("EDGECNN_ZOO", str(env))
    assert zoo_dirs() == [env, checkout, wheel] and zoo_dirs(wheel) == [wheel]  # an explicit folder alone
    assert resolve_zoo(f"zoo:{NAME}") == env / NAME / f"{NAME}.int8.onnx"
    assert resolve_zoo(f"zoo:{NAME}:fp32") == checkout / NAME / f"{NAME}.fp32.onnx"  # env lacks it: next
    (row,) = list_zoo()
    assert row.index == env and row.files == {
        "fp32": checkout / NAME / f"{NAME}.fp32.onnx",
        "int8": env / NAME / f"{NAME}.int8.onnx",
    }
    assert row.to_dict()["available"] == ["fp32", "int8"] and row.test_accuracy["int8"] == 0.49
    monkeypatch.setenv("EDGECNN_ZOO", str(tmp_path / "typo"))  # a set but wrong $EDGECNN_ZOO is an error
    with pytest.raises(ModelFileError, match="typo is not a model zoo"):
        resolve_zoo(f"zoo:{NAME}")


def test_the_default_places_are_the_checkout_and_the_package():
    package = Path(edgecnn.__file__).resolve().parent
    assert zoo._checkout_zoo() == package.parent / "models"  # beside edgecnn/ in a checkout
    assert zoo._wheel_zoo().resolve() == package / "_zoo"  # where setup.py's build_py puts the wheel's copy


def test_no_zoo_anywhere(no_default_zoo):
    assert zoo_dirs() == []
    for attempt in (lambda: resolve_zoo(f"zoo:{NAME}"), list_zoo):
        with pytest.raises(ModelFileError, match="no model zoo found.*set EDGECNN_ZOO"):
            attempt()
