"""The architecture's rules that import-linter cannot state, checked on the source itself.

- Only ``control/acts.py`` moves a VM along the state machine (``lifecycle.transition``) and
  calls the driver's mutating methods (``start``, ``stop``, ``release``, ``sweep``); the
  domain's planner may replay transitions on its own copies (``planner._apply``), and the
  host agent carries out on its host the commands acts sent it.
- No import cycles between our modules, counting imports made only for type checking: a
  module is never called back by the one it calls.
- No hand-written source file is over 400 lines (the style guide's rule; generated files
  such as the dashboard's API types are not counted).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "blacksmith_mini"
MUTATING = {"start", "stop", "release", "sweep"}
ALLOWED_TRANSITIONS = {"control/acts.py", "domain/planner.py", "domain/lifecycle.py"}
# The host agent carries out, on its host's driver, the commands ``control/acts.py`` persisted
# for it (and kills what the control plane wrote off); it decides nothing of its own.
ALLOWED_DRIVER_CALLS = {"control/acts.py", "agent/agent.py"}


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def test_only_acts_moves_vms_and_drives_the_driver() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = str(path.relative_to(PACKAGE))
        if relative.startswith(("vm/", "simulator/")):
            continue  # the drivers themselves, and the fake GitHub's own runners
        for call in _calls(ast.parse(path.read_text())):
            func = call.func
            if not isinstance(func, ast.Attribute):
                continue
            owner = ast.unparse(func.value)
            moves = func.attr == "transition" and owner.endswith("lifecycle")
            if moves and relative not in ALLOWED_TRANSITIONS:
                offenders.append(f"{relative}:{call.lineno} lifecycle.transition")
            drives = func.attr in MUTATING and owner.endswith("driver") and owner != "vm_driver"
            if drives and relative not in ALLOWED_DRIVER_CALLS:
                offenders.append(f"{relative}:{call.lineno} {owner}.{func.attr}")
    assert offenders == [], "only control/acts.py may do these:\n" + "\n".join(offenders)


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for target in found if target in known and target != name}


def cycles() -> list[list[str]]:
    known = modules()
    graph = {name: _imports(name, path, set(known)) for name, path in known.items()}
    for name in list(graph):  # a package's __init__ importing its children is no cycle
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                found.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    found = cycles()
    assert found == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


MAX_LINES = 400
SOURCE_SUFFIXES = {".py", ".ts", ".tsx", ".js", ".mjs", ".sh", ".css"}
GENERATED = {"frontend/lib/api/schema.d.ts", "frontend/next-env.d.ts"}
SKIPPED_DIRS = {"node_modules", ".next", "out", ".venv", ".tools", "__pycache__"}


def _hand_written() -> list[pathlib.Path]:
    found = []
    for top in ("src", "tests", "bench", "scripts", "frontend", "images", "deploy"):
        for path in (ROOT / top).rglob("*"):
            relative = path.relative_to(ROOT)
            if SKIPPED_DIRS & set(relative.parts) or str(relative) in GENERATED:
                continue
            if path.suffix in SOURCE_SUFFIXES and path.is_file():
                found.append(path)
    return found


def test_no_source_file_is_over_400_lines() -> None:
    files = _hand_written()
    assert len(files) > 100, "the walk found too few files: is ROOT right?"
    long = {
        str(path.relative_to(ROOT)): count
        for path in files
        if (count := len(path.read_text(errors="replace").splitlines())) > MAX_LINES
    }
    assert long == {}, f"over {MAX_LINES} lines (split them by what they do): {long}"


if __name__ == "__main__":  # `python tests/test_architecture.py` lists them
    for cycle in cycles():
        print(" -> ".join(cycle))
    pytest.main([__file__, "-q"])
