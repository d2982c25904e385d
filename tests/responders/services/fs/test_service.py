"""The fs Service as built from settings: which tools exist per root mode, their annotations, and results that match their output schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from responders.service import to_result
from responders.services.fs import FsSettings, Roots, build
from responders.services.fs.edit import Edit
from responders.services.fs.service import Filesystem

READ_TOOLS = {
    "read_text_file",
    "read_media_file",
    "read_multiple_files",
    "list_directory",
    "list_directory_with_sizes",
    "directory_tree",
    "search_files",
    "grep_files",
    "get_file_info",
    "list_allowed_directories",
}
WRITE_TOOLS = {"write_file", "edit_file", "create_directory", "move_file", "copy_file", "delete_file"}


def test_read_write_root_registers_every_tool(root: Path) -> None:
    """A read-write root gets all sixteen tools."""
    assert set(build(FsSettings(roots=[str(root)])).tools) == READ_TOOLS | WRITE_TOOLS


def test_read_only_roots_register_no_write_tool(root: Path, base: Path) -> None:
    """When every root is :ro the write tools are not registered at all."""
    assert set(build(FsSettings(roots=[f"{root}:ro", f"{base / 'outside'}:ro"])).tools) == READ_TOOLS


@pytest.mark.parametrize(
    ("tool", "read_only", "destructive", "idempotent"),
    [
        ("read_text_file", True, False, True),
        ("grep_files", True, False, True),
        ("write_file", False, True, True),
        ("edit_file", False, True, False),
        ("create_directory", False, False, True),
        ("move_file", False, False, False),
        ("copy_file", False, True, True),
        ("delete_file", False, True, True),
    ],
)
def test_annotations(root: Path, tool: str, read_only: bool, destructive: bool, idempotent: bool) -> None:
    """Each tool carries readOnly/destructive/idempotent hints as the reference server does, and openWorldHint false."""
    spec = build(FsSettings(roots=[str(root)])).tools[tool]
    a = spec.annotations
    assert (a.readOnlyHint, a.destructiveHint, a.idempotentHint, a.openWorldHint) == (
        read_only,
        destructive,
        idempotent,
        False,
    )
    assert "\n" not in spec.description and "allowed directories" in spec.description


def test_every_structured_result_matches_its_output_schema(root: Path) -> None:
    """The structuredContent of each tool validates against the outputSchema it advertises."""
    svc = build(FsSettings(roots=[str(root)]))
    fs = Filesystem(Roots([str(root)]), 1024)
    calls: dict[str, Any] = {
        "read_text_file": fs.read_text_file("five.txt", offset=1, limit=1),
        "read_multiple_files": fs.read_multiple_files(["five.txt", "nope"]),
        "list_directory": fs.list_directory("."),
        "list_directory_with_sizes": fs.list_directory_with_sizes("."),
        "directory_tree": fs.directory_tree("."),
        "search_files": fs.search_files(".", "*.py"),
        "grep_files": fs.grep_files(".", "o", context=1),
        "get_file_info": fs.get_file_info("five.txt"),
        "list_allowed_directories": fs.list_allowed_directories(),
        "edit_file": fs.edit_file("sub/code.py", [Edit(oldText="1", newText="2")], dryRun=True),
        "write_file": fs.write_file("w.txt", "w"),
    }
    for name, value in calls.items():
        spec = svc.tools[name]
        schema = json.loads(spec.definition)["outputSchema"]
        result = to_result(value, spec)
        jsonschema.validate(msgspec.json.decode(msgspec.json.encode(result.structuredContent)), schema)
        assert result.content and result.content[0].text == value.__mcp_text__()  # type: ignore[union-attr]
