"""The package surface and the dependency tiers: the runtime side must never need torch."""

import types

import edgecnn
from conftest import run_cli


def test_public_names_are_explicit_and_importable():
    assert edgecnn.__all__ == sorted(set(edgecnn.__all__), key=edgecnn.__all__.index)  # no duplicates
    for name in edgecnn.__all__:
        assert hasattr(edgecnn, name), name
    public = {n for n, v in vars(edgecnn).items()
              if not n.startswith("_") and n != "annotations" and not isinstance(v, types.ModuleType)}
    assert public <= set(edgecnn.__all__), public - set(edgecnn.__all__)


def test_every_error_is_an_edgecnn_error():
    from edgecnn import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), edgecnn.EdgeCNNError)


def test_tier0_imports_and_cli_work_with_torch_blocked():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "import edgecnn, edgecnn.cli, edgecnn.config, edgecnn.errors, edgecnn.files, edgecnn.plots\n"
            "import edgecnn.metadata, edgecnn.preprocess, edgecnn.runtime, edgecnn.bench, edgecnn.quantize\n"
            "assert 'torchvision' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    version = run_cli("--version", block_torch=True)
    assert version.returncode == 0 and version.stdout.startswith("edgecnn ")
    assert run_cli("--help", block_torch=True).returncode == 0
