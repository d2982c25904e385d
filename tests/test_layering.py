"""The package layering of DESIGN.md, checked statically: every import in schemas/, bus/, bridge/,
responders/, telemetry/ and cli/ is read with `ast` (relative imports resolved), so a wrong import fails
here before it ships."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "bus", "bridge", "responders", "telemetry", "cli")
OURS = frozenset(PACKAGES)
TELEMETRY_LIBS = frozenset({"prometheus_client", "opentelemetry"})
# Modules whose import means I/O (urllib.parse, pathlib's pure paths and the like stay allowed) (sockets, processes, files beyond pathlib's pure paths, the event loop).
IO_MODULES = frozenset(
    {
        "socket",
        "asyncio",
        "anyio",
        "selectors",
        "ssl",
        "subprocess",
        "multiprocessing",
        "threading",
        "shutil",
        "tempfile",
        "urllib.request",
        "http.client",
        "http.server",
        "io",
        "os",
        "signal",
        "nats",
        "aiofiles",
        "requests",
        "httpx",
    }
)


def _module_name(path: Path) -> tuple[str, bool]:
    """(dotted module name, is a package __init__) for a file under REPO."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module imported by the file (import, from-import, relative, and literal import_module)."""
    module, is_pkg = _module_name(path)
    package = module if is_pkg else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                assert base_parts and base_parts[0], f"{path}: relative import above the top-level package"
                base = ".".join(base_parts)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            found.add(node.args[0].value)
    return found


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _files(package: str) -> list[Path]:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no Python files found under {package}/"
    return files


def _offenders(packages: tuple[str, ...], forbidden: set[str]) -> list[str]:
    bad: list[str] = []
    for package in packages:
        for path in _files(package):
            for name in sorted(imports_of(path)):
                if _top(name) in forbidden:
                    bad.append(f"{path.relative_to(REPO)} imports {name}")
    return bad


def test_import_resolution_sees_relative_and_absolute_imports() -> None:
    """The import scanner resolves relative imports to absolute names (a self-check, so the rules below cannot pass vacuously)."""
    paths = imports_of(REPO / "responders" / "services" / "fs" / "paths.py")
    assert "responders.errors" in paths
    session = imports_of(REPO / "bridge" / "methods.py")
    assert {"bridge.catalog", "schemas.jsonrpc", "msgspec"} <= session
    assert any(_top(n) == "nats" for p in _files("bus") for n in imports_of(p))


def test_only_bus_imports_nats() -> None:
    """No module outside bus/ imports the nats client."""
    assert _offenders(("schemas", "bridge", "responders"), {"nats"}) == []


def test_schemas_import_no_other_layer() -> None:
    """schemas/ is pure data: it imports none of bus/, bridge/ or responders/."""
    assert _offenders(("schemas",), {"bus", "bridge", "responders"}) == []


@pytest.mark.parametrize(("package", "other"), [("bridge", "responders"), ("responders", "bridge")])
def test_bridge_and_responders_do_not_import_each_other(package: str, other: str) -> None:
    """bridge/ never imports responders/, and responders/ never imports bridge/."""
    assert _offenders((package,), {other}) == []


def test_telemetry_imports_only_schemas_among_our_packages() -> None:
    """telemetry/ builds on schemas/ alone: it never reaches into bus/, bridge/, responders/ or cli/."""
    assert _offenders(("telemetry",), set(OURS - {"schemas", "telemetry"})) == []


def test_only_telemetry_imports_prometheus_and_opentelemetry() -> None:
    """prometheus_client and opentelemetry are imported by telemetry/ modules only."""
    others = tuple(p for p in PACKAGES if p != "telemetry")
    assert _offenders(others, set(TELEMETRY_LIBS)) == []
    assert any(
        _top(n) == "opentelemetry" for p in _files("telemetry") for n in imports_of(p)
    )  # the rule is live


def test_schemas_do_no_io() -> None:
    """schemas/ is pure data: none of its modules imports a socket, process, file-system or event-loop module."""
    bad = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in _files("schemas")
        for name in sorted(imports_of(path))
        if any(name == m or name.startswith(m + ".") for m in IO_MODULES)
    ]
    assert bad == []
    assert "urllib.parse" in imports_of(REPO / "schemas" / "uritemplate.py")  # pure modules stay allowed
