"""The import graph of ``mia_bridge/`` points one way: each package imports its own layer and lower ones only.

Every module is parsed with ``ast`` (nothing is imported), and every import counts: at module level, inside
functions, under ``if TYPE_CHECKING:``, and a module named in a string constant (``"mia_bridge.x.y"``, what
``importlib.import_module`` is given). The layers, lowest first (README "## Architecture" has the same table):

====  ==========================  ============================================================================
rank  packages                    what lives there
====  ==========================  ============================================================================
0     mia_bridge (the root),      the version, the error classes and exit codes, private-file helpers, CSV
      errors, safe_files,         neutralisation; the future record layer (field accessors, one time parser;
      csv_safety, records         task "records"). These may import one another (no cycle).
1     readers                     one module per input format: rows in, records or quarantine out
2     bridge                      talking to Exchange Online / Graph (PSRP, REST); backends register here
3     sim                         the simulated tenant: a backend that only cli/ registers (nobody else
                                  imports it; bridge/ never does)
4     evidence                    the case folder's store: append-only evidence files, manifest, seal, verify
5     collect                     the collector: windows, retries, resume journal; writes into evidence/
6     analysis                    MailItemsAccessed analysis over evidence or exports
7     exports, report, enrich     the outputs: Sparrow CSVs and timeline, the HTML report, affected parties;
                                  three siblings that do not import one another
8     investigate                 the investigation's steps, over everything below
9     cli                         commands, console, connection; the only place that knows every layer
====  ==========================  ============================================================================

Why evidence/ sits below collect/ (the issue's data flow reads bridge → collect → evidence): evidence/ is the
storage format of a case and knows nothing of where records come from; the collector is one of its writers
(``EvidenceFile``, ``manifest``, ``seal``), as the analysis and investigation are its readers. Putting the
store below its writer keeps the collector writing evidence directly, flushed and journalled fetch by fetch,
without a protocol that would only mirror ``EvidenceFile`` method for method.

``ALLOWED`` lists the known exceptions, each with the task that removes it; the integrator empties it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = "mia_bridge"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / ROOT


@dataclass(frozen=True)
class Layer:
    name: str
    units: tuple[str, ...]
    siblings_may_import: bool = False  # may the units of this layer import one another?
    only_imported_by: tuple[str, ...] | None = None  # None: any higher layer may import it


LAYERS: tuple[Layer, ...] = (
    Layer("foundation", (ROOT, "errors", "safe_files", "csv_safety", "records"), siblings_may_import=True),
    Layer("readers", ("readers",)),
    Layer("bridge", ("bridge",)),
    Layer("sim", ("sim",), only_imported_by=("cli",)),
    Layer("evidence", ("evidence",)),
    Layer("collect", ("collect",)),
    Layer("analysis", ("analysis",)),
    Layer("outputs", ("exports", "report", "enrich")),
    Layer("investigate", ("investigate",)),
    Layer("cli", ("cli",)),
)

# Known imports against the order: (importing module, imported module) -> who removes it and how.
ALLOWED: dict[tuple[str, str], str] = {}

_MODULE_NAME = re.compile(rf"^{ROOT}(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. mia_bridge.collect.engine
    target: str  # the imported module, e.g. mia_bridge.evidence.store
    line: int

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool) -> Iterator[Import]:
    """Every mia_bridge import in one module's source, wherever it sits (functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(source)
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target == ROOT or (node.level and not node.module):  # from mia_bridge import errors, __version__
                for alias in node.names:
                    yield Import(module, f"{target}.{alias.name}" if alias.name != "*" else target, node.lineno)
            else:
                yield Import(module, target, node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.match(node.value):
            yield Import(module, node.value, node.lineno)  # imported by name: importlib.import_module(...)


def collect_imports(package_dir: Path) -> list[Import]:
    found: list[Import] = []
    for path in sorted(package_dir.rglob("*.py")):
        name = module_name(path, package_dir)
        found.extend(i for i in imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
                     if i.target == ROOT or i.target.startswith(ROOT + "."))
    return found


def unit_of(module: str, units: Iterable[str]) -> str:
    """The package (or top-level module) a module belongs to: mia_bridge.collect.engine -> collect."""
    parts = module.split(".")
    if len(parts) == 1:
        return ROOT
    return parts[1] if parts[1] in set(units) else ROOT  # mia_bridge.__version__ and the like: the root


def known_units(package_dir: Path) -> set[str]:
    units = {ROOT}
    for child in package_dir.iterdir():
        if child.is_dir() and (child / "__init__.py").exists():
            units.add(child.name)
        elif child.suffix == ".py" and child.name != "__init__.py":
            units.add(child.stem)
    return units


def check(package_dir: Path, layers: tuple[Layer, ...] = LAYERS,
          allowed: dict[tuple[str, str], str] | None = None) -> list[str]:
    """Every problem of the import graph under ``package_dir``, one sentence each (empty: the layers hold)."""
    allowed = ALLOWED if allowed is None else allowed
    rank = {unit: i for i, layer in enumerate(layers) for unit in layer.units}
    layer_of = {unit: layer for layer in layers for unit in layer.units}
    units = known_units(package_dir)
    problems = [f"{unit} is in no layer: place it in tests/test_layers.py LAYERS and the README's table"
                for unit in sorted(units - set(rank))]
    graph: dict[str, set[str]] = {u: set() for u in units}
    for imp in collect_imports(package_dir):
        src, dst = unit_of(imp.module, units), unit_of(imp.target, units)
        if src == dst or (imp.module, imp.target) in allowed:
            continue
        graph.setdefault(src, set()).add(dst)
        if src not in rank or dst not in rank:
            continue
        target_layer = layer_of[dst]
        if target_layer.only_imported_by is not None and src not in target_layer.only_imported_by:
            problems.append(f"{imp}: {dst}/ may be imported by {', '.join(target_layer.only_imported_by)} only")
        elif rank[dst] > rank[src]:
            problems.append(f"{imp}: {src} ({layer_of[src].name}) is below {dst} ({target_layer.name})")
        elif rank[dst] == rank[src] and not layer_of[src].siblings_may_import:
            problems.append(f"{imp}: {src} and {dst} are siblings in layer {layer_of[src].name}")
    problems.extend(f"import cycle between packages: {' -> '.join(cycle)}" for cycle in cycles(graph))
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# --- the real package ---------------------------------------------------------------------------------


def test_imports_follow_the_layer_order_with_no_cycle() -> None:
    assert check(PACKAGE_DIR) == []


def test_bridge_never_imports_sim() -> None:
    offending = [str(i) for i in collect_imports(PACKAGE_DIR)
                 if i.module.startswith(f"{ROOT}.bridge") and i.target.startswith(f"{ROOT}.sim")]
    assert offending == []


def test_every_allowed_exception_still_exists() -> None:
    """An allowed import that is gone must leave ALLOWED too, so the list only shrinks."""
    present = {(i.module, i.target) for i in collect_imports(PACKAGE_DIR)}
    assert [pair for pair in ALLOWED if pair not in present] == []


def test_the_readme_table_names_every_layer() -> None:
    readme = (PACKAGE_DIR.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    for layer in LAYERS:
        for unit in layer.units:
            assert f"`{unit}" in section, f"README's Architecture section does not place {unit}"


# --- the checker itself, on fake packages ------------------------------------------------------------------


def _fake(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / ROOT
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
    return root


_CLEAN = {
    "errors.py": "class MiaError(Exception): ...\n",
    "bridge/backend.py": "from mia_bridge.errors import MiaError\n",
    "collect/engine.py": "from mia_bridge.bridge import backend\nfrom ..evidence.store import X\n",
    "evidence/store.py": "from mia_bridge import errors\nX = 1\n",
    "cli/app.py": "import mia_bridge.sim.server\nfrom mia_bridge.collect import engine\n",
    "sim/server.py": "from mia_bridge.bridge.backend import MiaError\n",
    "analysis/normalise.py": "T = 1\n",
    "investigate/plan.py": "P = 1\n",
}


def test_checker_passes_a_clean_fake_package(tmp_path: Path) -> None:
    assert check(_fake(tmp_path, _CLEAN), allowed={}) == []


def test_checker_finds_an_upward_import_inside_a_type_checking_block(tmp_path: Path) -> None:
    root = _fake(tmp_path, {**_CLEAN, "collect/state.py": (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mia_bridge.investigate.plan import P\n")})
    problems = check(root, allowed={})
    assert len(problems) == 1
    assert problems == ["mia_bridge.collect.state (line 3) imports mia_bridge.investigate.plan: collect (collect) "
                        "is below investigate (investigate)"]


def test_checker_finds_an_upward_import_inside_a_function_and_a_relative_one(tmp_path: Path) -> None:
    root = _fake(tmp_path, {**_CLEAN, "evidence/verify.py": (
        "def f():\n    from ..collect import engine\n    return engine\n")})
    assert check(root, allowed={}) == [
        "mia_bridge.evidence.verify (line 2) imports mia_bridge.collect: evidence (evidence) is below collect "
        "(collect)", "import cycle between packages: collect -> evidence"]


def test_checker_finds_a_cycle_and_a_sibling_import(tmp_path: Path) -> None:
    root = _fake(tmp_path, {**_CLEAN, "enrich/step.py": "from mia_bridge.report.html import T\n",
                            "report/html.py": "from mia_bridge.enrich import step\n"})
    problems = check(root, allowed={})
    assert "import cycle between packages: enrich -> report" in problems
    assert sum("are siblings in layer outputs" in p for p in problems) == 2


def test_checker_keeps_sim_private_to_the_cli_even_by_name(tmp_path: Path) -> None:
    root = _fake(tmp_path, {**_CLEAN, "bridge/factory.py": 'PLUGINS = {"sim": "mia_bridge.sim.server"}\n',
                            "investigate/pipeline.py": "from mia_bridge.sim import server\n"})
    problems = check(root, allowed={})
    assert [p for p in problems if "sim/ may be imported by cli only" in p] == [
        "mia_bridge.bridge.factory (line 1) imports mia_bridge.sim.server: sim/ may be imported by cli only",
        "mia_bridge.investigate.pipeline (line 1) imports mia_bridge.sim: sim/ may be imported by cli only"]
    assert problems[-1] == "import cycle between packages: bridge -> sim"  # sim/ imports bridge/


def test_checker_asks_for_a_new_package_to_be_placed(tmp_path: Path) -> None:
    root = _fake(tmp_path, {**_CLEAN, "plugins/x.py": "from mia_bridge.errors import MiaError\n"})
    assert check(root, allowed={}) == [
        "plugins is in no layer: place it in tests/test_layers.py LAYERS and the README's table"]


def test_checker_honours_the_allow_list(tmp_path: Path) -> None:
    root = _fake(tmp_path, {**_CLEAN, "collect/rowcheck.py": "from mia_bridge.analysis.normalise import T\n"})
    assert len(check(root, allowed={})) == 1
    assert check(root, allowed={("mia_bridge.collect.rowcheck", "mia_bridge.analysis.normalise"): "test"}) == []
