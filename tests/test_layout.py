"""The package's layout rules, checked on the source (see docs/architecture.md).

- no import cycle between modules (imports inside functions count: they are cycles too, only deferred);
- no private name (``_x``) imported from, or reached into, another module: helpers that several modules
  share are public names, in a module marked internal by a leading underscore when they are not user API;
- the layers only import downward: core knows nothing of the runtime, data, Hydra or W&B; nothing below the
  command line imports it.

``python tests/test_layout.py [PACKAGE_DIR]`` prints the report (cycles, private imports, layer breaches).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = "scmodal_jax"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Layer of each top-level part of the package and the layers it may import (besides itself).
LAYERS = {
    "_rows": ("base", ()),
    "_neighbors": ("base", ()),
    "core": ("core", ()),
    "runtime": ("runtime", ("base", "core")),
    "model": ("api", ("base", "core", "runtime", "metrics")),
    "anndata_api": ("api", ("base", "data", "analysis")),
    "metrics": ("metrics", ("base",)),
    "data": ("data", ("base",)),
    "analysis": ("analysis", ("base", "data", "metrics")),
    "cli": ("cli", ("base", "core", "runtime", "api", "metrics", "data", "analysis")),
    "__init__": ("api", ("base", "core", "runtime", "api", "data", "analysis")),
    "train": ("entry", ("cli",)),
    "analyze": ("entry", ("cli",)),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def scan(root: Path = ROOT):
    """(modules, edges, private): module -> path; importer -> {imported}; [(importer, source, name, line)]."""
    modules = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    edges: dict[str, set[str]] = defaultdict(set)
    private: list[tuple[str, str, str, int]] = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        aliases: dict[str, str] = {}  # local name -> package module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _resolve(mod, is_package, node.level, node.module)
                if not source.startswith(PACKAGE):
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    if sub in modules:  # `from . import module`
                        edges[mod].add(sub)
                        aliases[alias.asname or alias.name] = sub
                        continue
                    edges[mod].add(source)
                    name = alias.name
                    if name.startswith("_") and not name.startswith("__") and source != mod:
                        private.append((mod, source, name, node.lineno))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PACKAGE) and alias.name in modules:
                        edges[mod].add(alias.name)
                        if alias.asname:
                            aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                private.append((mod, aliases[node.value.id], node.attr, node.lineno))
    for mod in edges:
        edges[mod].discard(mod)
    return modules, edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def part(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def layer_breaches(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for importer, imported in edges.items():
        layer, allowed = LAYERS.get(part(importer), (None, ()))
        for target in imported:
            target_layer = LAYERS.get(part(target), (None, ()))[0]
            if layer is None or target_layer is None:
                bad.append((importer, target))
            elif target_layer != layer and target_layer not in allowed:
                bad.append((importer, target))
    return sorted(bad)


# ---------------------------------------------------------------------------------------------- tests
def test_no_import_cycles():
    _, edges, _ = scan()
    assert cycles(edges) == []


def test_no_private_names_across_modules():
    _, _, private = scan()
    assert private == [], "\n".join(f"{m}:{line} uses {s}.{n}" for m, s, n, line in private)


def test_layers_import_downward_only():
    _, edges, _ = scan()
    assert layer_breaches(edges) == []


def test_checker_finds_what_it_looks_for(tmp_path):
    # A hand-made package with one cycle (a late import), one private import and one layer breach.
    pkg = tmp_path / PACKAGE
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("from .b import _helper\n")
    (pkg / "core" / "b.py").write_text("def f():\n    from . import a\n\n_helper = 1\n")
    (pkg / "data.py").write_text("")
    (pkg / "core" / "c.py").write_text("from .. import data\n")
    _, edges, private = scan(pkg)
    assert cycles(edges) == [[f"{PACKAGE}.core.a", f"{PACKAGE}.core.b"]]
    assert [(m, s, n) for m, s, n, _ in private] == [(f"{PACKAGE}.core.a", f"{PACKAGE}.core.b", "_helper")]
    assert (f"{PACKAGE}.core.c", f"{PACKAGE}.data") in layer_breaches(edges)


if __name__ == "__main__":
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT
    modules, edges, private = scan(root)
    print(f"{len(modules)} modules, {sum(len(v) for v in edges.values())} internal imports")
    found = cycles(edges)
    print(f"cycles: {len(found)}")
    for c in found:
        print("  " + " <-> ".join(c))
    print(f"private names used across modules: {len(private)}")
    for m, s, n, line in private:
        print(f"  {m}:{line} <- {s}.{n}")
    breaches = layer_breaches(edges)
    print(f"layer breaches: {len(breaches)}")
    for a, b in breaches:
        print(f"  {a} -> {b}")
