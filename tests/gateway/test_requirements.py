"""The runtime and test requirements are apart: requirements.txt is all the image installs (Dockerfile), so
every third-party package the gateway's code imports must come from it or from what it depends on; the test
and bench tools live in requirements-test.txt only (docs/deploy.md, docs/performance.md "Memory")."""
from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("gateway_project", "keys", "teams", "spend", "guardrails", "proxy")


def requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def closure(roots: list[Requirement]) -> set[str]:
    """The distributions the roots install: them and their dependencies (extras and markers applied)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(requirement.name, frozenset(requirement.extras)) for requirement in roots]
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        for line in metadata.requires(name) or ():
            dependency = Requirement(line)
            wanted = dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in (extras or {""}))
            if wanted:
                todo.append((dependency.name, frozenset(dependency.extras)))
    return {name for name, _ in seen}


def imported_top_level_names() -> dict[str, str]:
    """Every top-level module name the gateway's code imports (anywhere, lazily too) → one file doing it."""
    names: dict[str, str] = {}
    for package in RUNTIME_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    names.setdefault(module.split(".")[0], str(path.relative_to(ROOT)))
    return names


def test_the_image_installs_the_runtime_requirements_only():
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if not line.startswith("#")]
    assert re.findall(r"pip install (.+)$", "\n".join(instructions), re.M) == ["-r requirements.txt"]
    assert not any("requirements-test" in line for line in instructions)


def test_the_test_requirements_add_the_tools_to_the_runtime_and_nothing_is_in_both():
    test_file = ROOT / "requirements-test.txt"
    assert "-r requirements.txt" in test_file.read_text().splitlines()
    runtime = {canonicalize_name(r.name) for r in requirements(ROOT / "requirements.txt")}
    tools = {canonicalize_name(r.name) for r in requirements(test_file)}
    assert {"pytest", "pytest-django", "selenium", "moto", "openai"} <= tools
    assert not runtime & tools


def test_every_package_the_gateway_imports_comes_with_the_runtime_requirements():
    installed = closure(requirements(ROOT / "requirements.txt"))
    providers = metadata.packages_distributions()  # top-level module name → distributions providing it
    missing = {}
    for name, where in imported_top_level_names().items():
        if name in sys.stdlib_module_names or name == "__future__" or name in RUNTIME_PACKAGES:
            continue
        distributions = {canonicalize_name(d) for d in providers.get(name, ())}
        if not distributions & installed:
            missing[name] = (where, sorted(distributions) or "not installed")
    assert not missing, f"imported by the gateway but not installed by requirements.txt: {missing}"
