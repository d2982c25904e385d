"""The ADR-32 service API ($SRV.PING/INFO/STATS) of real fs responders, checked against the
official JSON Schemas (tests/data/adr32, copied from the NATS ADR repository), plus the
per-tool counters that STATS reports and the queue-group request subjects they count."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
from referencing import Registry

from bus import Bus
from schemas import bus as h

from ..conftest import Responders

pytestmark = pytest.mark.anyio

SCHEMAS = Path(__file__).parent.parent / "data" / "adr32"
FS_TOOLS = {
    "read_text_file",
    "read_media_file",
    "read_multiple_files",
    "write_file",
    "edit_file",
    "create_directory",
    "list_directory",
    "list_directory_with_sizes",
    "directory_tree",
    "move_file",
    "search_files",
    "grep_files",
    "get_file_info",
    "list_allowed_directories",
    "copy_file",
    "delete_file",
}
VERBS = {"PING": "ping", "INFO": "info", "STATS": "stats"}


@cache
def validator(verb: str) -> jsonschema.protocols.Validator:
    """The validator for one verb's response schema, of the Draft the schema declares, offline."""
    schema = json.loads((SCHEMAS / f"micro_v1_{VERBS[verb]}_response.json").read_text())
    cls = jsonschema.validators.validator_for(schema, default=None)
    assert cls is jsonschema.Draft7Validator, (
        f"the ADR-32 schemas declare draft-07, got {schema.get('$schema')}"
    )
    cls.check_schema(schema)
    # An empty registry: a $ref to anything remote would fail instead of being fetched.
    return cls(schema, registry=Registry(), format_checker=cls.FORMAT_CHECKER)


def check(verb: str, data: bytes) -> dict[str, Any]:
    """Decode one $SRV reply, validate it against its ADR-32 schema and return it."""
    body: dict[str, Any] = msgspec.json.decode(data)
    errors = sorted(validator(verb).iter_errors(body), key=str)
    assert not errors, f"$SRV.{verb} reply violates the ADR-32 schema: {[e.message for e in errors]}\n{body}"
    if verb == "STATS":
        # jsonschema checks format "date-time" only with an optional package; check RFC 3339 here.
        started = dt.datetime.fromisoformat(body["started"])
        assert started.tzinfo is not None, f"started has no timezone: {body['started']}"
        assert started <= dt.datetime.now(dt.UTC)
    return body


async def scatter_ours(bus: Bus, subject: str, root: str) -> list[bytes]:
    """Every reply to `subject`; replies of services under other roots are validated but dropped."""
    replies = await bus.scatter(subject, idle=0.2, limit=2.0)
    verb = subject.split(".")[1]
    ours = []
    for r in replies:
        body = check(verb, r.data)
        if (body.get("metadata") or {}).get(h.META_ROOT) == root:
            ours.append(r.data)
    return ours


async def call(
    bus: Bus, root: str, tool: str, args: dict[str, Any], *, token: str | None = None
) -> tuple[Any, dict[str, str]]:
    subject = f"{root}.fs.tools.call.{token or tool}"
    body = msgspec.json.encode({"name": tool, "arguments": args})
    msg = await bus.request(subject, body, timeout=5)
    return msgspec.json.decode(msg.data), dict(msg.headers or {})


async def stats_by_instance(bus: Bus, root: str) -> dict[str, dict[str, dict[str, Any]]]:
    """instance id -> endpoint name -> that endpoint's STATS entry."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for data in await scatter_ours(bus, f"$SRV.STATS.{root}-fs", root):
        body = msgspec.json.decode(data)
        assert body["id"] not in out, f"instance {body['id']} answered STATS twice"
        out[body["id"]] = {e["name"]: e for e in body["endpoints"]}
    return out


async def wait_stats(
    bus: Bus, root: str, ok: Any, timeout: float = 3.0
) -> dict[str, dict[str, dict[str, Any]]]:
    """Bounded poll until `ok(stats)` holds (counters are recorded just after the reply is sent)."""
    end = time.monotonic() + timeout
    stats = await stats_by_instance(bus, root)
    while not ok(stats) and time.monotonic() < end:
        await asyncio.sleep(0.05)
        stats = await stats_by_instance(bus, root)
    return stats


@pytest.fixture
def real_tmp(tmp_path: Path) -> str:
    """tmp_path as the fs service reports it (symlinks resolved)."""
    return os.path.realpath(tmp_path)


@pytest.fixture
async def two_fs(responders: Responders, tmp_path: Path) -> list[str]:
    """Two single-instance fs responders rooted at tmp_path; their ADR-32 ids."""
    responders.start("fs", "--fs-root", str(tmp_path))
    responders.start("fs", "--fs-root", str(tmp_path))
    return await responders.wait_instances("fs", 2)


async def test_ping_info_stats_replies_match_the_adr32_schemas(
    two_fs: list[str], bus: Bus, root: str
) -> None:
    """PING, INFO and STATS, plain, by name and by name.id, answer once per instance with schema-valid replies."""
    name = f"{root}-fs"
    assert len(set(two_fs)) == 2
    for verb in VERBS:
        for subject in (f"$SRV.{verb}", f"$SRV.{verb}.{name}"):
            bodies = [msgspec.json.decode(d) for d in await scatter_ours(bus, subject, root)]
            ids = [b["id"] for b in bodies]
            assert sorted(ids) == sorted(two_fs), f"{subject}: expected each instance once, got {ids}"
            for b in bodies:
                assert b["type"] == f"io.nats.micro.v1.{VERBS[verb]}_response"
                assert b["name"] == name
                assert b["metadata"][h.META_ROOT] == root
                assert b["metadata"][h.META_SERVICE] == "fs"
                assert b["metadata"]["pid"].isdigit()
        for instance in two_fs:
            replies = await bus.scatter(f"$SRV.{verb}.{name}.{instance}", idle=0.2, limit=2.0)
            assert [check(verb, r.data)["id"] for r in replies] == [instance], (
                f"$SRV.{verb}.{name}.{instance}"
            )
    pids = {
        msgspec.json.decode(d)["metadata"]["pid"] for d in await scatter_ours(bus, f"$SRV.PING.{name}", root)
    }
    assert len(pids) == 2, "two processes, two pids"


async def test_info_lists_one_endpoint_per_tool_plus_discover_and_tools_list(
    two_fs: list[str], bus: Bus, root: str
) -> None:
    """INFO describes the service and lists every tool's call subject in queue group fs, plus discover and tools-list."""
    infos = [msgspec.json.decode(d) for d in await scatter_ours(bus, f"$SRV.INFO.{root}-fs", root)]
    assert len(infos) == 2
    expected = {t: f"{root}.fs.tools.call.{t}" for t in FS_TOOLS}
    expected["discover"] = f"{root}.fs.discover"
    expected["tools-list"] = f"{root}.fs.tools.list"
    for info in infos:
        assert isinstance(info["description"], str) and info["description"].strip()
        endpoints = info["endpoints"]
        names = [e["name"] for e in endpoints]
        assert len(names) == len(set(names)), f"duplicate endpoint names: {names}"
        assert {e["name"]: e["subject"] for e in endpoints} == expected
        assert {e["queue_group"] for e in endpoints} == {"fs"}
        for e in endpoints:
            if e["name"] in FS_TOOLS:
                tool = json.loads(e["metadata"][h.META_TOOL])
                assert tool["name"] == e["name"] and tool["inputSchema"]["type"] == "object"


async def test_stats_count_calls_and_errors_across_instances(
    two_fs: list[str], bus: Bus, root: str, tmp_path: Path, real_tmp: str
) -> None:
    """Per-tool num_requests summed over the instances equal the calls made, per answering instance too, and an isError result counts as an error."""
    before = await stats_by_instance(bus, root)
    assert set(before) == set(two_fs)
    for per_ep in before.values():
        assert all(
            e["num_requests"] == 0 and e["num_errors"] == 0 for name, e in per_ep.items() if name in FS_TOOLS
        )

    calls = 8
    answered: dict[str, int] = dict.fromkeys(two_fs, 0)
    for _ in range(calls):
        result, headers = await call(bus, root, "list_allowed_directories", {})
        assert result.get("isError") is not True
        assert real_tmp in result["content"][0]["text"]
        answered[headers[h.INSTANCE]] += 1
    outside = str(tmp_path.parent / "elsewhere.txt")
    bad, bad_headers = await call(bus, root, "read_text_file", {"path": outside})
    assert bad["isError"] is True and "outside the allowed directories" in bad["content"][0]["text"]
    assert h.SERVICE_ERROR_CODE not in bad_headers, "a tool error is a result, not a service error"

    def settled(s: dict[str, dict[str, dict[str, Any]]]) -> bool:
        return bool(
            sum(ep["list_allowed_directories"]["num_requests"] for ep in s.values()) == calls
            and sum(ep["read_text_file"]["num_requests"] for ep in s.values()) == 1
        )

    stats = await wait_stats(bus, root, settled)
    for instance, per_ep in stats.items():
        lad = per_ep["list_allowed_directories"]
        assert lad["num_requests"] == answered[instance], (
            f"{instance}: STATS disagrees with Mcp-Instance headers"
        )
        assert lad["num_errors"] == 0 and lad["last_error"] == ""
        if lad["num_requests"]:
            assert lad["processing_time"] > 0
            assert lad["average_processing_time"] == lad["processing_time"] // lad["num_requests"]
    read = [per_ep["read_text_file"] for per_ep in stats.values()]
    assert sum(e["num_requests"] for e in read) == 1
    assert sum(e["num_errors"] for e in read) == 1
    failed = next(e for e in read if e["num_errors"])
    assert "outside the allowed directories" in failed["last_error"]
    assert stats[bad_headers[h.INSTANCE]]["read_text_file"]["num_errors"] == 1
    untouched = {"list_directory", "get_file_info", "write_file", "discover"}
    assert all(per_ep[n]["num_requests"] == 0 for per_ep in stats.values() for n in untouched)


async def test_subject_and_body_disagreeing_is_refused(
    two_fs: list[str], bus: Bus, root: str, tmp_path: Path
) -> None:
    """A call whose subject names one tool and whose body names another is refused with -32602 and runs nothing."""
    (tmp_path / "secret.txt").write_text("do not write me")
    msg = await bus.request(
        f"{root}.fs.tools.call.read_text_file",
        msgspec.json.encode({"name": "write_file", "arguments": {"path": "secret.txt", "content": "pwned"}}),
        timeout=5,
    )
    headers = msg.headers or {}
    assert headers.get(h.SERVICE_ERROR_CODE) == "-32602", headers
    assert "write_file" in headers.get(h.SERVICE_ERROR, "")
    body = msgspec.json.decode(msg.data)
    assert body["code"] == -32602 and "read_text_file" in body["message"]
    assert (tmp_path / "secret.txt").read_text() == "do not write me"

    # The catch-all token `_` is only for names that cannot be a token; a token-safe name is refused there too.
    under = await bus.request(
        f"{root}.fs.tools.call._", b'{"name":"list_allowed_directories","arguments":{}}', timeout=5
    )
    assert (under.headers or {}).get(h.SERVICE_ERROR_CODE) == "-32602"


async def test_tools_list_over_nats_returns_every_tool(two_fs: list[str], bus: Bus, root: str) -> None:
    """A request to <root>.fs.tools.list returns every fs tool with its input schema, and STATS counts it."""
    msg = await bus.request(f"{root}.fs.tools.list", b"{}", timeout=5)
    assert h.SERVICE_ERROR_CODE not in (msg.headers or {})
    result = msgspec.json.decode(msg.data)
    tools = {t["name"]: t for t in result["tools"]}
    assert set(tools) == FS_TOOLS
    assert len(result["tools"]) == len(FS_TOOLS)
    for t in tools.values():
        assert t["inputSchema"]["type"] == "object"
        assert isinstance(t.get("description"), str) and t["description"]
    stats = await wait_stats(
        bus, root, lambda s: sum(ep["tools-list"]["num_requests"] for ep in s.values()) == 1
    )
    assert sum(ep["tools-list"]["num_requests"] for ep in stats.values()) == 1


def test_schema_check_rejects_a_reply_that_breaks_adr32() -> None:
    """The schema check is live: a name with a dot, a wrong type string or a missing field fails it."""
    good = {
        "type": "io.nats.micro.v1.ping_response",
        "name": "t-fs",
        "id": "x",
        "version": "0.1.0",
        "metadata": {},
    }
    check("PING", msgspec.json.encode(good))
    for bad in (
        {**good, "name": "t.fs"},
        {**good, "type": "io.nats.micro.v1.info_response"},
        {k: v for k, v in good.items() if k != "id"},
        {**good, "version": "1"},
        {**good, "metadata": {"pid": 1}},
    ):
        with pytest.raises(AssertionError, match="violates the ADR-32 schema"):
            check("PING", msgspec.json.encode(bad))


async def test_refused_call_counts_as_an_endpoint_error(two_fs: list[str], bus: Bus, root: str) -> None:
    """A call refused on a tool's subject (-32602) counts in that endpoint's num_requests and num_errors, as ADR-32 STATS defines them."""
    msg = await bus.request(
        f"{root}.fs.tools.call.get_file_info",
        b'{"name":"list_directory","arguments":{"path":"."}}',
        timeout=5,
    )
    assert (msg.headers or {}).get(h.SERVICE_ERROR_CODE) == "-32602"
    stats = await wait_stats(
        bus, root, lambda s: sum(ep["get_file_info"]["num_errors"] for ep in s.values()) == 1, 1.0
    )
    entries = [ep["get_file_info"] for ep in stats.values()]
    assert sum(e["num_requests"] for e in entries) == 1
    assert sum(e["num_errors"] for e in entries) == 1
