"""The test suite's checkpoint cache can never serve a checkpoint made by other code, data or settings."""

from __future__ import annotations

import shutil

from checkpoint_cache import REPO, SOURCES, cache_key, cached_checkpoint, code_digest


def test_the_key_follows_code_settings_data_and_torch(tmp_path):
    base = cache_key("{}", "data", code="code", torch_version="2.0")
    assert base != cache_key('{"epochs": 2}', "data", code="code", torch_version="2.0")
    assert base != cache_key("{}", "other data", code="code", torch_version="2.0")
    assert base != cache_key("{}", "data", code="changed", torch_version="2.0")
    assert base != cache_key("{}", "data", code="code", torch_version="2.1")
    copy = tmp_path / "repo"
    for pattern in SOURCES:
        for path in REPO.glob(pattern):
            (copy / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy / path.relative_to(REPO))
    assert code_digest(copy) == code_digest(REPO)
    loop = copy / "edgecnn" / "training" / "loop.py"
    loop.write_text(loop.read_text() + "\n# one more line\n")
    assert code_digest(copy) != code_digest(REPO)  # any edit to the training code is a new key


def test_a_miss_trains_and_stores_a_hit_copies(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_TEST_CACHE", str(tmp_path / "cache"))
    calls = []

    def train(out):
        calls.append(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "checkpoint.pt").write_bytes(b"weights")
        return out / "checkpoint.pt"

    first, hit = cached_checkpoint("k", tmp_path / "a", train)
    assert not hit and first.read_bytes() == b"weights" and len(calls) == 1
    second, hit = cached_checkpoint("k", tmp_path / "b", train)
    assert hit and second == tmp_path / "b" / "checkpoint.pt" and second.read_bytes() == b"weights"
    assert len(calls) == 1
    monkeypatch.setenv("EDGECNN_TEST_CACHE", "off")
    assert not cached_checkpoint("k", tmp_path / "c", train)[1] and len(calls) == 2
