"""The documentation as a reader meets it: README.md is a short entry point; every Python block of README.md and
of each docs/*.md page runs, per page, in order, as a reader would run them — in a fresh folder, on the real
datasets, a block that needs nothing from the training side with torch blocked; every module, name and file a
page mentions exists; docs/cli.md is what tools/cli_reference.py prints now, and holds every option of every
command and no other; docs/architecture.md's tree is the package on disk."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import REPO, blocking_prelude
from PIL import Image

from edgecnn.bench.framings import frame_all

README = REPO / "README.md"
PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
# pages whose blocks need more than a fresh folder and a photo, run by their own tests
RUN_ELSEWHERE = {
    "docs/serving.md": "tests/serve/test_readme_serve.py (against a real server)",
    "docs/PYPI.md": "test_the_wheel_page_block_runs_on_a_device_install (on an exported model)",
}
# a block importing any of these needs the training side; every other block runs as on a device
TRAINING_SIDE = re.compile(
    r"^\s*(?:from|import) (?:torch|torchvision|onnx|matplotlib|edgecnn\.(?:training|export))\b", re.M
)
MAX_README_LINES = 160


def _text(page: str) -> str:
    return (REPO / page).read_text()


def _blocks(text: str) -> list[tuple[str, bool]]:
    """(code, runs on a device install) for every ```python block, in order."""
    codes = re.findall(r"```python\n(.*?)```", text, re.S)
    return [(code, not TRAINING_SIDE.search(code)) for code in codes]


def _run(code: str, cwd: Path, device: bool) -> subprocess.CompletedProcess[str]:
    prelude = blocking_prelude() if device else ""
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=900,
    )


def test_the_readme_is_an_entry_point_that_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    commands = [line.split("#")[0].strip() for line in lines[3:6] if line.split("#")[0].strip()]
    assert lines[:3] == ["# edgecnn", "", "```bash"] and commands == ["tools/demo.sh", "tools/test.sh"], lines[:6]


def test_every_page_with_python_blocks_is_run_somewhere():
    with_blocks = {page for page in PAGES if _blocks(_text(page))}
    assert with_blocks - set(RUN_ELSEWHERE) >= {"README.md", "docs/api.md"}
    assert any(device for page in with_blocks for _, device in _blocks(_text(page)))


@pytest.mark.parametrize("page", [p for p in PAGES if p not in RUN_ELSEWHERE and _blocks(_text(p))])
def test_every_python_block_of_the_page_runs(page, tmp_path, fashion):
    blocks = _blocks(_text(page))
    garment = frame_all(fashion.test_images[:1, 0].numpy(), "white margin")[0]  # a shirt on white paper
    garment.save(tmp_path / "photo.png")
    for number, (code, device) in enumerate(blocks, 1):
        proc = _run(code, tmp_path, device)
        assert proc.returncode == 0, f"{page} block {number}:\n{code}\n{proc.stderr[-3000:]}"
    if page == "docs/api.md":  # the device-app block ran on the model the training block exported
        assert len(blocks) >= 2 and any(device for _, device in blocks)
        assert (tmp_path / "fbn.onnx").is_file() and (tmp_path / "fbn.int8.onnx").is_file()


def test_the_wheel_page_block_runs_on_a_device_install(tmp_path, fashion, checkpoints):
    from edgecnn.config import ExportConfig
    from edgecnn.export.from_checkpoint import export_checkpoint

    export_checkpoint(
        checkpoints("fashion_bn", "fashion-mnist"),
        tmp_path / "model.onnx",
        ExportConfig(parity_samples=300, latency_iters=3),
    )
    Image.fromarray(255 - fashion.test_images[0, 0].numpy()).save(tmp_path / "photo.jpg")
    blocks = _blocks(_text("docs/PYPI.md"))
    assert blocks
    for code, _ in blocks:
        proc = _run(code, tmp_path, device=True)
        assert proc.returncode == 0, f"{code}\n{proc.stderr[-3000:]}"


def _named(text: str) -> set[str]:
    """Dotted edgecnn names a page imports from, or shows in backticks under one of edgecnn's own modules or
    names (`edgecnn.fields.RANGES`; a metadata key such as `edgecnn.parity` is no module and is left alone)."""
    imported = re.findall(r"\bfrom (edgecnn[\w.]*) import", text) + re.findall(
        r"^\s*import (edgecnn[\w.]*)", text, re.M
    )
    ours = {p.stem if p.suffix else p.name for p in (REPO / "edgecnn").iterdir()} | set(
        dir(importlib.import_module("edgecnn"))
    )
    quoted = [name for name in re.findall(r"`(edgecnn(?:\.\w+)+)`", text) if name.split(".")[1] in ours]
    return set(imported + quoted)


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@pytest.mark.parametrize("page", PAGES)
def test_pages_name_no_module_or_name_that_does_not_exist(page):
    text = _text(page)
    missing = sorted(name for name in _named(text) if not _resolves(name))
    assert not missing, f"{page} names what edgecnn does not have: {', '.join(missing)}"


@pytest.mark.parametrize("page", PAGES)
def test_pages_name_no_file_that_does_not_exist(page):
    text = _text(page)
    paths = set(re.findall(r"(?<![\w./-])((?:edgecnn|tools|tests|docs|models)/[\w./-]*\w\.(?:py|sh|md|json))", text))
    short = set(re.findall(r"`((?:cli|runtime|bench|serve|export|training|data)/\w+\.py)`", text))
    missing = sorted(p for p in paths if not (REPO / p).exists()) + sorted(
        p for p in short if not (REPO / "edgecnn" / p).exists()
    )
    missing += [link for link in re.findall(r"\]\(([^)\s]+)\)", text) if not _link_resolves(page, link)]
    assert not missing, f"{page} names files or links that do not exist: {', '.join(missing)}"


def _link_resolves(page: str, link: str) -> bool:
    """A relative markdown link's file exists, and so does its #anchor (GitHub's heading slugs)."""
    if re.match(r"[a-z]+:", link):
        return True  # https:, mailto: — not ours to check offline
    target, _, anchor = link.partition("#")
    path = (REPO / page).parent / target if target else REPO / page
    if not path.exists():
        return False
    headings = re.findall(r"^#+ (.+)$", path.read_text(), re.M) if anchor and path.suffix == ".md" else []
    return not anchor or anchor in {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


# --- docs/cli.md against click -------------------------------------------------------------------------


def _generator():
    spec = importlib.util.spec_from_file_location("cli_reference", REPO / "tools" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_is_what_the_generator_prints_now():
    written, now = (REPO / "docs" / "cli.md").read_text(), _generator().render()
    diff = difflib.unified_diff(written.splitlines(), now.splitlines(), "docs/cli.md", "the commands now", lineterm="")
    assert written == now, "run .venv/bin/python tools/cli_reference.py:\n" + "\n".join(list(diff)[:40])


def _click_options(command: click.Command, path: str, parent: click.Context | None = None) -> dict[str, set[str]]:
    """{command path: every visible option flag} for ``command`` and all its subcommands, from click."""
    ctx = click.Context(command, info_name=path.split()[-1], parent=parent, **command.context_settings)
    found = {
        path: {
            flag
            for p in command.get_params(ctx)
            if isinstance(p, click.Option) and not p.hidden
            for flag in (*p.opts, *p.secondary_opts)
        }
    }
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            found |= _click_options(command.get_command(ctx, name), f"{path} {name}", ctx)
    return found


def _documented_options(text: str) -> dict[str, set[str]]:
    """{command path: the option flags of its section's option lines} from the markdown."""
    sections = re.split(r"^## (edgecnn(?: [\w-]+)*)$", text, flags=re.M)
    documented = {}
    for heading, body in zip(sections[1::2], sections[2::2], strict=True):
        lines = re.findall(r"^- ((?:`-[^`]+`(?:, )?)+) \(", body, re.M)
        documented[heading] = {flag for line in lines for flag in re.findall(r"`(-[^`]+)`", line)}
    return documented


def test_the_cli_reference_lists_every_option_of_every_command_and_no_other():
    from edgecnn.cli import main

    expected = _click_options(main, "edgecnn")
    documented = _documented_options((REPO / "docs" / "cli.md").read_text())
    problems = [f"no section for `{c}`" for c in sorted(set(expected) - set(documented))]
    problems += [f"a section for `{c}`, which is no command" for c in sorted(set(documented) - set(expected))]
    for command in sorted(set(expected) & set(documented)):
        for flag in sorted(expected[command] - documented[command]):
            problems.append(f"`{command}` {flag} is missing")
        for flag in sorted(documented[command] - expected[command]):
            problems.append(f"`{command}` {flag} is documented but does not exist")
    assert not problems, "docs/cli.md against click:\n" + "\n".join(problems)


# --- docs/architecture.md against the package ------------------------------------------------------------


def _tree_modules(text: str) -> set[str]:
    """The modules the architecture page's tree lists, as paths under edgecnn/ ("runtime/session.py")."""
    tree = re.search(r"```text\n(edgecnn/\n.*?)```", text, re.S)
    assert tree, "docs/architecture.md has a ```text block that starts with edgecnn/"
    modules, folder = set(), ""
    for line in tree.group(1).splitlines()[1:]:
        indent, name = len(line) - len(line.lstrip()), line.split()[0] if line.strip() else ""
        if indent == 0:
            break  # models/, tests/ …: past the package
        if indent == 2 and name.endswith("/"):
            folder = name
        elif name.endswith(".py"):
            modules.add((folder if indent == 4 else "") + name)
    return modules


def test_the_architecture_tree_lists_every_module_on_disk_and_no_other():
    package = REPO / "edgecnn"
    on_disk = {
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if not (p.name == "__init__.py" and p.parent != package)  # a package's __init__ is its folder's line
    }
    listed = _tree_modules((REPO / "docs" / "architecture.md").read_text())
    problems = [f"{m} is on disk but not in the tree" for m in sorted(on_disk - listed)]
    problems += [f"{m} is in the tree but not on disk" for m in sorted(listed - on_disk)]
    assert not problems, "docs/architecture.md's tree against edgecnn/:\n" + "\n".join(problems)
