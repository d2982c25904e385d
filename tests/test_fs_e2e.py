"""The fs service end to end: the official MCP client drives `mcp-nats bridge`, which calls real fs
responders over NATS. An attack table (traversal, sibling prefix, symlinks, planted symlinks at
write targets, NUL bytes, long paths, non-UTF-8 names, read-only roots, delete without confirm)
checked against the files on disk; tool behaviour through the bridge; and two instances that
give the same answers."""

from __future__ import annotations

import base64
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from mcp.types import CallToolResult, ImageContent, TextContent

from bus import Bus
from schemas import bus as h

from .conftest import Responders
from .e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio

SECRET = "TOP-SECRET-never-in-a-reply"
VICTIM = "victim content outside the root"
PNG = (
    b"\x89PNG\r\n\x1a\n"
    + struct.pack(">I", 13)
    + b"IHDR"
    + struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    + b"\0\0\0\0"
)


@dataclass
class Layout:
    base: Path
    root: Path
    ro: Path
    outside: Path
    evil: Path
    snapshot: dict[str, tuple[bytes, int]] = field(default_factory=dict)

    def take(self) -> dict[str, tuple[bytes, int]]:
        """Content and mtime of every file outside the read-write root (outside, evil sibling, read-only root)."""
        out: dict[str, tuple[bytes, int]] = {}
        for top in (self.outside, self.evil, self.ro):
            for dirpath, dirs, files in os.walk(top):
                for name in dirs + files:
                    p = os.path.join(dirpath, name)
                    st = os.lstat(p)
                    out[p] = (b"" if name in dirs else Path(p).read_bytes(), st.st_mtime_ns)
        return out


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """root (read-write) with symlinks planted to the outside; `<root>-evil`; outside/; ro/ (a :ro root)."""
    base = tmp_path.resolve()
    root, ro, outside, evil = base / "root", base / "ro", base / "outside", base / "root-evil"
    for d in (root / "sub", ro, outside / "inner", evil):
        d.mkdir(parents=True)
    (root / "five.txt").write_text("one\ntwo\nthree\nfour\nfive\n")
    (root / "sub" / "code.py").write_text("def f():\n    return 1\n")
    (outside / "secret.txt").write_text(SECRET)
    (outside / "inner" / "secret.txt").write_text(SECRET)
    (outside / "victim.txt").write_text(VICTIM)
    (evil / "secret.txt").write_text(SECRET)
    (ro / "readme.txt").write_text("read only\n")
    (root / "link-file").symlink_to(outside / "secret.txt")
    (root / "link-dir").symlink_to(outside, target_is_directory=True)
    (root / "trap").symlink_to(outside / "victim.txt")
    (root / "dangling").symlink_to(outside / "created-through-link.txt")
    with open(os.fsencode(root) + b"/bad\xffname.txt", "wb") as f:
        f.write(b"latin name\n")
    lay = Layout(base, root, ro, outside, evil)
    lay.snapshot = lay.take()
    return lay


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


@dataclass(frozen=True)
class Attack:
    name: str
    tool: str
    args: dict[str, Any]
    says: str
    """A fragment the refusal must contain (the reason)."""
    error: bool = True
    """False for tools that report per-item failures inside a successful result."""


def attacks(lay: Layout) -> list[Attack]:
    r, o, ro = str(lay.root), str(lay.outside), str(lay.ro)
    out = "outside the allowed directories"
    return [
        Attack("dotdot", "read_text_file", {"path": "../outside/secret.txt"}, out),
        Attack("dotdot inside sub", "read_text_file", {"path": "sub/../../outside/secret.txt"}, out),
        Attack("absolute dotdot", "read_text_file", {"path": f"{r}/../outside/secret.txt"}, out),
        Attack("absolute outside", "read_text_file", {"path": f"{o}/secret.txt"}, out),
        Attack("etc passwd", "read_text_file", {"path": "/etc/passwd"}, out),
        Attack("sibling prefix read", "read_text_file", {"path": f"{r}-evil/secret.txt"}, out),
        Attack("sibling prefix list", "list_directory", {"path": f"{r}-evil"}, out),
        Attack("sibling prefix write", "write_file", {"path": f"{r}-evil/new.txt", "content": "x"}, out),
        Attack("symlink file read", "read_text_file", {"path": "link-file"}, "through a symlink"),
        Attack("symlink file media", "read_media_file", {"path": "link-file"}, "through a symlink"),
        Attack("symlink file info", "get_file_info", {"path": "link-file"}, "through a symlink"),
        Attack(
            "symlink file multi",
            "read_multiple_files",
            {"paths": ["five.txt", "link-file"]},
            "Error - access denied",
            error=False,
        ),
        Attack("symlink dir read", "read_text_file", {"path": "link-dir/secret.txt"}, "through a symlink"),
        Attack("symlink dir list", "list_directory", {"path": "link-dir"}, "through a symlink"),
        Attack("symlink dir tree", "directory_tree", {"path": "link-dir"}, "through a symlink"),
        Attack(
            "symlink dir search", "search_files", {"path": "link-dir", "pattern": "*"}, "through a symlink"
        ),
        Attack(
            "symlink dir grep", "grep_files", {"path": "link-dir", "pattern": "SECRET"}, "through a symlink"
        ),
        Attack("symlink dir mkdir", "create_directory", {"path": "link-dir/new/deeper"}, "through a symlink"),
        Attack("symlink dir write", "write_file", {"path": "link-dir/new.txt", "content": "x"}, "outside"),
        Attack(
            "planted link write_file", "write_file", {"path": "trap", "content": "pwned"}, "through a symlink"
        ),
        Attack(
            "planted link edit_file",
            "edit_file",
            {"path": "trap", "edits": [{"oldText": "victim", "newText": "pwned"}]},
            "through a symlink",
        ),
        Attack(
            "planted link copy_file",
            "copy_file",
            {"source": "five.txt", "destination": "trap", "overwrite": True},
            "through a symlink",
        ),
        Attack(
            "planted link move_file",
            "move_file",
            {"source": "five.txt", "destination": "trap"},
            "through a symlink",
        ),
        Attack("dangling link write_file", "write_file", {"path": "dangling", "content": "pwned"}, "symlink"),
        Attack(
            "dangling link copy_file",
            "copy_file",
            {"source": "five.txt", "destination": "dangling"},
            "symlink",
        ),
        Attack(
            "move source outside",
            "move_file",
            {"source": f"{o}/secret.txt", "destination": "stolen.txt"},
            out,
        ),
        Attack(
            "copy source outside",
            "copy_file",
            {"source": "link-file", "destination": "stolen.txt"},
            "through a symlink",
        ),
        Attack(
            "move destination outside",
            "move_file",
            {"source": "five.txt", "destination": f"{o}/moved.txt"},
            out,
        ),
        Attack("NUL read", "read_text_file", {"path": "five.txt\x00.png"}, "NUL"),
        Attack("NUL write", "write_file", {"path": "x\x00y", "content": "x"}, "NUL"),
        Attack("NUL delete", "delete_file", {"path": "five.txt\x00", "confirm": True}, "NUL"),
        Attack("long component", "read_text_file", {"path": "a" * 300}, "too long"),
        Attack("long path", "read_text_file", {"path": "/".join(["b" * 200] * 30)}, "no such file"),
        Attack(
            "long path under the root",
            "read_text_file",
            {"path": r + "/" + "/".join(["sub"] * 2000)},
            "no such file",
        ),
        Attack("long write", "write_file", {"path": "c" * 5000, "content": "x"}, "too long"),
        Attack("read-only write", "write_file", {"path": f"{ro}/new.txt", "content": "x"}, "read-only"),
        Attack(
            "read-only overwrite", "write_file", {"path": f"{ro}/readme.txt", "content": "x"}, "read-only"
        ),
        Attack(
            "read-only edit",
            "edit_file",
            {"path": f"{ro}/readme.txt", "edits": [{"oldText": "read", "newText": "x"}]},
            "read-only",
        ),
        Attack("read-only mkdir", "create_directory", {"path": f"{ro}/d"}, "read-only"),
        Attack(
            "read-only move out",
            "move_file",
            {"source": f"{ro}/readme.txt", "destination": "taken.txt"},
            "read-only",
        ),
        Attack("read-only delete", "delete_file", {"path": f"{ro}/readme.txt", "confirm": True}, "read-only"),
        Attack("delete without confirm", "delete_file", {"path": "five.txt"}, "confirm: true"),
        Attack(
            "delete dir without recursive", "delete_file", {"path": "sub", "confirm": True}, "recursive: true"
        ),
        Attack(
            "delete a root",
            "delete_file",
            {"path": r, "confirm": True, "recursive": True},
            "allowed directory itself",
        ),
        Attack(
            "delete root by dot",
            "delete_file",
            {"path": ".", "confirm": True, "recursive": True},
            "allowed directory itself",
        ),
        Attack("non-UTF-8 name as shown", "read_text_file", {"path": "bad\\xffname.txt"}, "no such file"),
    ]


async def test_attack_table_is_refused_and_nothing_outside_is_read_or_changed(
    layout: Layout, responders: Responders, bridge_argv: list[str]
) -> None:
    """Every attack comes back as isError naming the reason; no reply carries the secret; files outside the roots, the read-only root and planted symlinks are unchanged."""
    responders.start("fs", "--fs-root", str(layout.root), "--fs-root", f"{layout.ro}:ro")
    await responders.wait_instances("fs", 1)
    failures: list[str] = []
    table = attacks(layout)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            for a in table:
                result = await client.call_tool(f"fs_{a.tool}", a.args)
                text = text_of(result)
                if bool(result.is_error) is not a.error:
                    failures.append(f"{a.name}: isError={result.is_error}: {text[:200]}")
                if a.says not in text:
                    failures.append(f"{a.name}: expected {a.says!r} in {text[:200]!r}")
                if a.error and len(text) > 600:
                    failures.append(
                        f"{a.name}: a refusal should be one short sentence, got {len(text)} characters"
                    )
                if SECRET in text or SECRET in repr(result.structured_content) or "Traceback" in text:
                    failures.append(f"{a.name}: leaked: {text[:200]}")
            # walks that start inside the root skip whatever leads out of it
            for tool, args in [
                ("search_files", {"path": ".", "pattern": "**/secret*"}),
                ("grep_files", {"path": ".", "pattern": "SECRET"}),
                ("directory_tree", {"path": "."}),
                ("list_directory_with_sizes", {"path": "."}),
            ]:
                result = await client.call_tool(f"fs_{tool}", args)
                text = text_of(result)
                if result.is_error or SECRET in text or "secret.txt" in text or "victim" in text:
                    failures.append(f"{tool} from the root reached outside: {text[:300]}")
    assert not failures, "\n".join(failures)
    assert len(table) >= 40
    assert layout.take() == layout.snapshot, "a file outside the read-write root was changed or created"
    assert os.readlink(layout.root / "trap") == str(layout.outside / "victim.txt")
    assert (layout.outside / "victim.txt").read_text() == VICTIM
    assert not (layout.outside / "created-through-link.txt").exists()
    assert not (layout.root / "stolen.txt").exists() and not (layout.root / "taken.txt").exists()
    assert (layout.root / "five.txt").read_text().startswith("one") and (
        layout.root / "sub" / "code.py"
    ).exists()


async def test_non_utf8_names_list_and_read_cleanly(
    layout: Layout, responders: Responders, bridge_argv: list[str]
) -> None:
    """A file whose name is not UTF-8 is listed with a \\xNN escape (no crash, valid JSON), and the escaped name reads as 'no such file'."""
    responders.start("fs", "--fs-root", str(layout.root))
    await responders.wait_instances("fs", 1)
    with anyio.fail_after(30):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            listing = await client.call_tool("fs_list_directory", {"path": "."})
            assert not listing.is_error
            assert "[FILE] bad\\xffname.txt" in text_of(listing).splitlines()
            tree = await client.call_tool("fs_directory_tree", {"path": "."})
            assert not tree.is_error and "bad\\\\xffname.txt" in text_of(tree)
            found = await client.call_tool("fs_grep_files", {"path": ".", "pattern": "latin name"})
            assert not found.is_error and "bad\\xffname.txt:1:latin name" in text_of(found)


async def test_tools_through_the_bridge(
    layout: Layout, responders: Responders, bridge_argv: list[str]
) -> None:
    """Edits with a diff, dry runs, the byte cap, grep, media, copy/move/delete and their structured results work through NATS."""
    root = layout.root
    (root / "pic.png").write_bytes(PNG)
    (root / "big.txt").write_text("".join(f"{i:04d}\n" for i in range(400)))
    responders.start("fs", "--fs-root", str(root), env={"MCP_NATS_FS_MAX_READ_BYTES": "100"})
    await responders.wait_instances("fs", 1)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert {
                "fs_grep_files",
                "fs_edit_file",
                "fs_delete_file",
                "fs_copy_file",
                "fs_read_media_file",
            } <= set(tools)
            assert tools["fs_grep_files"].output_schema is not None
            assert (
                tools["fs_delete_file"].annotations is not None
                and tools["fs_delete_file"].annotations.destructive_hint is True
            )

            cut = await client.call_tool("fs_read_text_file", {"path": "big.txt"})
            assert cut.structured_content == {
                "content": "".join(f"{i:04d}\n" for i in range(20))
                + "\n[truncated at the fs read cap (100 bytes); continue with offset=20]",
                "truncated": True,
                "nextOffset": 20,
            }
            ranged = await client.call_tool(
                "fs_read_text_file", {"path": "big.txt", "offset": 20, "limit": 2}
            )
            assert text_of(ranged) == "0020\n0021\n"

            preview = await client.call_tool(
                "fs_edit_file",
                {
                    "path": "sub/code.py",
                    "edits": [{"oldText": "return 1", "newText": "return 2"}],
                    "dryRun": True,
                },
            )
            assert not preview.is_error and "-    return 1\n+    return 2" in text_of(preview)
            assert (root / "sub" / "code.py").read_text() == "def f():\n    return 1\n"
            edit = await client.call_tool(
                "fs_edit_file",
                {
                    "path": "sub/code.py",
                    "edits": [{"oldText": "def f():\nreturn 1", "newText": "def f():\n    return 3"}],
                },
            )
            assert (
                not edit.is_error
                and isinstance(edit.structured_content, dict)
                and edit.structured_content["dryRun"] is False
            )
            assert (root / "sub" / "code.py").read_text() == "def f():\n    return 3\n"

            grep = await client.call_tool("fs_grep_files", {"path": ".", "pattern": "return", "context": 1})
            assert not grep.is_error and isinstance(grep.structured_content, dict)
            assert [(m["line"], m["before"]) for m in grep.structured_content["matches"]] == [
                (2, ["def f():"])
            ]

            media = await client.call_tool("fs_read_media_file", {"path": "pic.png"})
            [img] = media.content
            assert (
                isinstance(img, ImageContent)
                and img.mime_type == "image/png"
                and base64.b64decode(img.data) == PNG
            )

            assert not (
                await client.call_tool("fs_copy_file", {"source": "five.txt", "destination": "copy.txt"})
            ).is_error
            again = await client.call_tool("fs_copy_file", {"source": "five.txt", "destination": "copy.txt"})
            assert again.is_error and "overwrite" in text_of(again)
            assert not (
                await client.call_tool("fs_move_file", {"source": "copy.txt", "destination": "sub/moved.txt"})
            ).is_error
            assert not (await client.call_tool("fs_create_directory", {"path": "x/y/z"})).is_error
            gone = await client.call_tool("fs_delete_file", {"path": "x", "confirm": True, "recursive": True})
            assert not gone.is_error
            assert (
                (root / "sub" / "moved.txt").exists()
                and not (root / "copy.txt").exists()
                and not (root / "x").exists()
            )


async def test_read_only_roots_expose_no_write_tools(
    layout: Layout, responders: Responders, bridge_argv: list[str]
) -> None:
    """A service started with only :ro roots lists no write tool, so a client cannot even try one."""
    responders.start("fs", "--fs-root", f"{layout.root}:ro")
    await responders.wait_instances("fs", 1)
    with anyio.fail_after(30):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "fs_read_text_file" in names and "fs_grep_files" in names
            assert not names & {
                "fs_write_file",
                "fs_edit_file",
                "fs_create_directory",
                "fs_move_file",
                "fs_copy_file",
                "fs_delete_file",
            }
            allowed = await client.call_tool("fs_list_allowed_directories", {})
            assert text_of(allowed) == f"Allowed directories:\n{layout.root} (read-only)"


READ_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("read_text_file", {"path": "five.txt", "tail": 2}),
    ("read_multiple_files", {"paths": ["five.txt", "sub/code.py", "../outside/secret.txt"]}),
    ("list_directory", {"path": "."}),
    ("list_directory_with_sizes", {"path": ".", "sortBy": "size"}),
    ("directory_tree", {"path": ".", "excludePatterns": ["*.py"]}),
    ("search_files", {"path": ".", "pattern": "*"}),
    ("grep_files", {"path": ".", "pattern": "o", "context": 1}),
    ("get_file_info", {"path": "sub"}),  # after the walks: its atime no longer changes between calls
    ("list_allowed_directories", {}),
    ("read_text_file", {"path": "link-file"}),
]


async def test_two_instances_give_the_same_answers(
    layout: Layout, responders: Responders, bus: Bus, root: str
) -> None:
    """Two fs processes serving the same roots answer every read tool with identical bodies (told apart by Mcp-Instance)."""
    for _ in range(2):
        responders.start("fs", "--fs-root", str(layout.root))
    ids = await responders.wait_instances("fs", 2)
    with anyio.fail_after(60):
        for tool, args in READ_CALLS:
            bodies: dict[str, set[bytes]] = {}
            body = msgspec.json.encode({"name": tool, "arguments": args})
            for i in range(
                40
            ):  # several calls each, until both instances have answered (queue-group spread is random)
                msg = await bus.request(f"{root}.fs.tools.call.{tool}", body, timeout=10)
                bodies.setdefault((msg.headers or {})[h.INSTANCE], set()).add(msg.data)
                if i >= 5 and len(bodies) == 2:
                    break
            assert set(bodies) == set(ids), f"{tool}: both instances should have answered, got {set(bodies)}"
            distinct = set().union(*bodies.values())
            assert len(distinct) == 1, f"{tool}: instances disagree: {distinct}"
            assert SECRET.encode() not in distinct.pop()
