"""Import direction is a contract: every import of every module of edgecnn/ (module-level and inside
functions, ``import x`` and ``from x import y``, relative ones resolved) is parsed with ``ast`` and held
to the tiers of STYLE.md, and no package's modules import each other in a cycle. A violation names the
file, the line and the import as written.

The checker (:func:`imports_of`, :func:`broken_contracts`, :func:`import_cycles`) takes any folder, so a
test points it at a small fake package with a planted upward import and a planted cycle and checks that it
reports exactly those. Package docstrings name their modules (checked at the end).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "edgecnn"


@dataclass(frozen=True)
class Import:
    module: str  # the importer's dotted name, e.g. "edgecnn.runtime.session"
    path: Path
    line: int
    text: str  # the statement as written
    target: str  # the module imported: "edgecnn.runtime.backends"; a name's module for "from m import name"

    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


@dataclass(frozen=True)
class Contract:
    """What ``modules`` (names relative to the root: "config", or "runtime" for a package and all in it)
    may import: ``never`` of the root's modules, ``only`` these of them (None: no such limit; a module
    may always import its own package), ``never_outside`` of the third-party top-level packages."""

    modules: tuple[str, ...]
    why: str
    never: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    never_outside: tuple[str, ...] = ()


def _module_name(root: Path, path: Path) -> str:
    parts = (root.name, *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(root: Path) -> list[Import]:
    """Every import in every module under ``root`` (a package folder), function-level ones included."""
    files = sorted(root.rglob("*.py"))
    known = {_module_name(root, f) for f in files}
    found = []
    for path in files:
        module, source = _module_name(root, path), path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source, str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, module, path.name == "__init__.py")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            else:
                continue
            text = " ".join(ast.get_source_segment(source, node).split())
            shown = path.relative_to(root.parent)
            found += [Import(module, shown, node.lineno, text, t) for t in dict.fromkeys(targets)]
    return found


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def broken_contracts(root: Path, contracts: Sequence[Contract]) -> list[str]:
    """One line per import that breaks a contract: file:line, the import, and the contract's reason."""
    return [
        f"{imp.where()}  ({contract.why})"
        for imp in imports_of(root)
        for contract in contracts
        if _breaks(contract, imp, root.name)
    ]


def _breaks(contract: Contract, imp: Import, top: str) -> bool:
    mine = [m for m in (f"{top}.{name}" for name in contract.modules) if _within(imp.module, [m])]
    if not mine:
        return False
    if not _within(imp.target, [top]):
        return _within(imp.target, contract.never_outside)
    if _within(imp.target, [f"{top}.{name}" for name in contract.never]):
        return True
    allowed = [*mine, *(f"{top}.{name}" for name in contract.only or ())]
    return contract.only is not None and not _within(imp.target, allowed)


def _package_of(module: str, packages: set[str]) -> str:
    return module if module in packages else module.rpartition(".")[0]


def import_cycles(root: Path) -> list[list[str]]:
    """The cycles among the modules of each package under ``root`` (a package's own modules importing one
    another, function-level imports included): one list per strongly connected group, each edge of it as
    file:line: import."""
    imports = imports_of(root)
    packages = {_module_name(root, p.parent / "__init__.py") for p in root.rglob("__init__.py")}
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:  # a package's __init__ counts as one of its modules; a subpackage is another package
        if imp.target != imp.module and _package_of(imp.module, packages) == _package_of(imp.target, packages):
            edges.setdefault(imp.module, {}).setdefault(imp.target, imp)
    return [
        [edges[a][b].where() for a in group for b in sorted(edges.get(a, {})) if b in group]
        for group in _strongly_connected(edges)
        if len(group) > 1
    ]


def _strongly_connected(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's groups of nodes that reach each other, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(groups)


BOTTOM = ("errors", "fields", "card", "config")
CONTRACTS = (
    Contract(BOTTOM, "config, card, errors and fields are the bottom tier: they import only one another", only=BOTTOM),
    Contract(("files",), "files.py is tier 0 beneath the runtime: the bottom tier only", only=BOTTOM),
    Contract(
        ("plots",), "plots.py draws for the CLI and training: the bottom tier and files only", only=(*BOTTOM, "files")
    ),
    Contract(
        ("runtime",),
        "the runtime is tier 0 and the bottom of the packages: the device side needs nothing above it",
        never=("export", "training", "data", "bench", "serve", "cli", "plots"),
    ),
    Contract(
        ("data",),
        "data is tier 0 (numpy, Pillow, the runtime's image reading): training and export read it, not the reverse",
        never=("training", "export", "serve", "bench", "cli", "plots"),
        never_outside=("torch", "torchvision", "onnx", "matplotlib"),
    ),
    Contract(
        ("serve",),
        "serve is tier 0 over the runtime's Predictor: it never needs the training or export side",
        never=("export", "training", "data", "bench", "cli", "plots"),
    ),
    Contract(
        ("bench",),
        "bench times engines; only its torch subject reads a checkpoint (edgecnn.training, inside the function)",
        never=("export", "data", "serve", "cli", "plots"),
    ),
    Contract(("training",), "training never imports export (export reads training's checkpoints)", never=("export",)),
    Contract(
        ("export", "training", "data", "runtime", "bench", "serve", "files", "plots", *BOTTOM),
        "the CLI is the top: nothing of the library imports it",
        never=("cli",),
    ),
)


def _packages() -> list[Path]:
    return sorted(p.parent for p in PACKAGE.glob("*/__init__.py"))


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: "+".join(c.modules[:4]))
def test_imports_follow_the_tiers(contract):
    broken = broken_contracts(PACKAGE, [contract])
    assert not broken, "imports against the tiers:\n" + "\n".join(broken)


@pytest.mark.parametrize("package", [PACKAGE, *_packages()], ids=lambda p: p.name)
def test_no_import_cycle_inside_a_package(package):
    cycles = [group for group in import_cycles(PACKAGE) if Path(group[0].split(":")[0]).parent.name == package.name]
    assert not cycles, "modules importing one another:\n" + "\n\n".join("\n".join(group) for group in cycles)


FAKE = {  # a package with one upward import (inside a function, relative) and one cycle; the rest is allowed
    "__init__.py": "from pkg.config import Config\n",
    "errors.py": "class Oops(Exception): ...\n",
    "config.py": "from pkg.errors import Oops\n\n\ndef modes():\n    from .export import modes\n",
    "export/__init__.py": "",
    "export/modes.py": "from pkg import config\nfrom pkg.runtime.a import run\n",
    "runtime/__init__.py": "from pkg.runtime.a import run\n",
    "runtime/a.py": "from pkg.errors import Oops\nfrom . import b\n",
    "runtime/b.py": "import math\n\n\ndef f():\n    import pkg.runtime.a\n",
    "runtime/c.py": "from .a import run\nfrom .b import f\n",
}


def test_the_checker_reports_exactly_a_planted_upward_import_and_a_planted_cycle(tmp_path):
    root = tmp_path / "pkg"
    for name, text in FAKE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert broken_contracts(root, CONTRACTS) == [f"pkg/config.py:5: from .export import modes  ({CONTRACTS[0].why})"]
    assert import_cycles(root) == [["pkg/runtime/a.py:2: from . import b", "pkg/runtime/b.py:5: import pkg.runtime.a"]]
    targets = {(i.module, i.target) for i in imports_of(root)}
    assert ("pkg.runtime.c", "pkg.runtime.a") in targets and ("pkg.export.modes", "pkg.config") in targets


@pytest.mark.parametrize("package", _packages(), ids=lambda p: p.name)
def test_a_package_docstring_names_each_of_its_modules(package):
    """Each module of the package appears in its ``__init__`` docstring as ``name`` (or a :mod: reference)."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
    modules = [p.stem for p in sorted(package.glob("*.py")) if p.name != "__init__.py"]
    missing = [name for name in modules if f"`{name}`" not in doc and f".{name}`" not in doc]
    assert not missing, f"{package.name}/__init__.py's docstring does not name: {', '.join(missing)}"
