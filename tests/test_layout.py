"""The package's module graph, read with ``ast`` (imports inside functions count): no import cycles, imports run
only downward through the layers named in ``hf_crossaug/__init__.py``, no private name crosses a module, and
each module-level constant is defined once."""

import ast
from collections import defaultdict
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent.parent / "hf_crossaug"
# utils -> config -> models -> backends -> stages -> build -> students -> methods -> hub -> cli;
# metrics is a leaf (it imports nothing else of the package) usable from any layer
RANK = {"utils": 0, "version": 0, "citations": 0, "metrics": 0, "config": 1, "models": 2, "backends": 3,
        "stages": 4, "build": 5, "students": 6, "methods": 7, "hub": 8, "cli": 9}
LEAVES = {"metrics"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    """``hf_crossaug.stages.select`` -> ``stages``; the package itself is ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(module: str) -> list[tuple[str, str, int]]:
    """``(imported module, imported name or "", line)`` for every import of a package module, anywhere in it."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "hf_crossaug"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "hf_crossaug":
                continue
            for alias in node.names:  # "from . import x" imports the module x when there is one
                sub = f"{target}.{alias.name}"
                out.append((sub, "", node.lineno) if sub in MODULES else (target, alias.name, node.lineno))
    return out


GRAPH = {m: {t for t, _, _ in imports(m) if t in MODULES and t != m} for m in MODULES}


def test_every_import_names_a_module_of_the_package():
    missing = [(m, t, line) for m in MODULES for t, _, line in imports(m) if t not in MODULES]
    assert missing == []


def test_no_import_cycles():
    """Depth-first search over the whole graph; a back edge is a cycle (reported with its path)."""
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(GRAPH[m]):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(MODULES):
        if m not in state:
            visit(m)
    assert cycles == []


def test_imports_run_downward_through_the_layers():
    assert {layer(m) for m in MODULES} - {""} == set(RANK), "a new layer needs a rank here and in __init__.py"
    wrong = []
    for m in MODULES:
        if m == "hf_crossaug":  # the lazy top-level facade may export from any layer
            continue
        for t, _, line in imports(m):
            src, dst = layer(m), layer(t)
            if src in LEAVES:
                ok = dst == src
            else:
                ok = dst == src or (dst != "" and RANK[dst] < RANK[src])
            if not ok:
                wrong.append(f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} ({src}) imports {t} ({dst or 'top'})")
    assert wrong == []


def test_no_private_name_is_imported_across_modules():
    private = [f"{m} imports {t}.{name}" for m in MODULES for t, name, _ in imports(m)
               if name.startswith("_") and not name.startswith("__")]
    private += [f"{m} imports {t}" for m in MODULES for t, _, _ in imports(m)
                if any(p.startswith("_") and not p.startswith("__") for p in t.split("."))]
    assert private == []


def constants(path: Path) -> dict[str, str]:
    """Module-level ``UPPER_CASE = value`` assignments, as source text of the value."""
    out = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) and node.value is not None else []
        for t in targets:
            if isinstance(t, ast.Name) and t.id.lstrip("_").isupper() and not t.id.startswith("__"):
                out[t.id] = ast.unparse(node.value)
    return out


# the metric scripts are loaded one by one by `evaluate`, as files: each carries its own module docs
PER_SCRIPT = {"_DESCRIPTION", "_KWARGS_DESCRIPTION", "_CITATION"}


def test_each_constant_is_defined_once():
    """The same name bound to the same value in two modules is one constant defined twice (import it)."""
    seen = defaultdict(list)
    for m, path in MODULES.items():
        for name, value in constants(path).items():
            if name not in PER_SCRIPT and not value.startswith(("re.compile", "{}", "[]")):
                seen[(name, value)].append(m)
    twice = {f"{name} = {value}": mods for (name, value), mods in seen.items() if len(mods) > 1}
    assert twice == {}
    # and a file name or other string constant spelt out in two modules under two names
    by_value = defaultdict(set)
    for (name, value), mods in seen.items():
        if value.startswith(("'", '"')) and len(value) > 6:
            by_value[value].update(f"{m}.{name}" for m in mods)
    assert {v: sorted(ms) for v, ms in by_value.items() if len(ms) > 1} == {}
