"""The audit log: one record per tool call on every instance, the stream's settings, redaction, the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import anyio
import msgspec
import pytest

from bus import Bus, BusError, DeadlineExceeded, JetStream, stream_name
from schemas import bus as h

from .audit_helpers import (
    SERVICE,
    call_body,
    read_records,
    start_audited,
    start_running_call,
    wait_count,
    write_config,
)
from .conftest import MCP_NATS, Responders, child_env
from .e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio

TOTAL = 2000
PLAN = {"ok": 1700, "tool_error": 200, "protocol_error": 40, "deadline": 30, "cancelled": 30}


async def _drive(bus: Bus, root: str) -> dict[str, str]:
    """Make the planned calls (64 in flight); returns call id -> expected outcome."""
    expected: dict[str, str] = {}
    limit = asyncio.Semaphore(64)
    subj = f"{root}.{SERVICE}.tools.call"

    async def one(kind: str, i: int) -> None:
        call_id = f"{kind}-{i}"
        expected[call_id] = kind
        headers = {h.CALL_ID: call_id, h.CLIENT: "load"}
        async with limit:
            if kind == "ok":
                reply = await bus.request(
                    f"{subj}.echo", call_body("echo", {"text": str(i)}), headers, timeout=10
                )
                assert h.SERVICE_ERROR_CODE not in (reply.headers or {})
            elif kind == "tool_error":
                reply = await bus.request(
                    f"{subj}.fail", call_body("fail", {"reason": str(i)}), headers, timeout=10
                )
                assert msgspec.json.decode(reply.data)["isError"] is True
            elif kind == "protocol_error":
                reply = await bus.request(f"{subj}.nope", call_body("nope", {}), headers, timeout=10)
                assert (reply.headers or {})[h.SERVICE_ERROR_CODE] == "-32602"
            elif kind == "deadline":
                headers[h.DEADLINE] = str(int((time.time() + 0.3) * 1000))
                reply = await bus.request(
                    f"{subj}.wait", call_body("wait", {"seconds": 10}), headers, timeout=10
                )
                assert (reply.headers or {})[h.SERVICE_ERROR_CODE] == "-31002"
            else:
                call = await start_running_call(
                    bus, f"{subj}.wait", call_body("wait", {"seconds": 30}, progress=True), headers
                )
                with call:
                    await bus.publish(f"{root}.{SERVICE}.cancel", msgspec.json.encode({"callId": call_id}))

    jobs = [one(kind, i) for kind, n in PLAN.items() for i in range(n)]
    await asyncio.gather(*jobs)
    return expected


@pytest.mark.slow
async def test_two_thousand_calls_on_two_instances_give_exactly_two_thousand_records(
    responders: Responders, bus: Bus, root: str
) -> None:
    """2,000 calls (ok, tool errors, protocol errors, deadlines, cancellations) over two instances leave exactly one record each, with the right outcome."""
    assert sum(PLAN.values()) == TOTAL
    start_audited(responders)
    start_audited(responders)
    instances = await responders.wait_instances(SERVICE, 2)
    with anyio.fail_after(60):
        expected = await _drive(bus, root)
        assert await wait_count(bus, root, TOTAL, timeout=20) == TOTAL
        records = await read_records(bus, root)
    assert len(records) == TOTAL
    by_id = {r.callId: r for r in records}
    assert len(by_id) == TOTAL, "a call id has more than one record"
    assert set(by_id) == set(expected)
    wrong = {cid: (r.outcome, expected[cid]) for cid, r in by_id.items() if r.outcome != expected[cid]}
    assert not wrong, f"{len(wrong)} records with the wrong outcome, e.g. {list(wrong.items())[:3]}"
    assert {r.instance for r in records} == set(instances), "both instances must have written records"
    assert all(r.service == SERVICE and r.identity == "load" and r.durationMs >= 0 for r in records)
    codes = Counter(
        (r.outcome, r.errorCode) for r in records if not isinstance(r.errorCode, msgspec.UnsetType)
    )
    assert codes == {
        ("protocol_error", -32602): PLAN["protocol_error"],
        ("deadline", -31002): PLAN["deadline"],
    }
    sample = by_id["ok-7"]
    assert (
        sample.tool == "echo" and sample.argsDigest == "sha256:" + hashlib.sha256(b'{"text":"7"}').hexdigest()
    )
    assert by_id["protocol_error-0"].tool == "nope"


async def test_audit_stream_denies_delete_and_purge_and_follows_the_config(
    responders: Responders, bus: Bus, root: str, tmp_path: Path
) -> None:
    """The responder creates the root's audit stream with deny delete/purge and the configured retention, and updates it when the config changes."""
    cfg = write_config(tmp_path / "a.toml", tmp_path, max_age=3600.0, max_bytes=10_000_000)
    proc = start_audited(responders, cfg)
    await responders.wait_instances(SERVICE, 1)
    js = bus.nc.jetstream()
    name = stream_name("audit", root)
    assert name == f"MCP_AUDIT_{root}" and stream_name("audit", "mcp") == "MCP_AUDIT"
    info = await js.stream_info(name)
    assert info.config.subjects == [f"{root}.audit.>"]
    assert info.config.deny_delete and info.config.deny_purge
    assert info.config.max_age == 3600 and info.config.max_bytes == 10_000_000
    await bus.request(
        f"{root}.{SERVICE}.tools.call.echo", call_body("echo", {"text": "x"}), {h.CALL_ID: "only"}, timeout=5
    )
    assert await wait_count(bus, root, 1, timeout=10) == 1
    with pytest.raises(Exception, match="not permitted"):
        await js.delete_msg(name, 1)
    with pytest.raises(Exception, match="not permitted"):
        await js.purge_stream(name)
    proc.terminate()
    proc.wait(10)
    start_audited(
        responders, write_config(tmp_path / "b.toml", tmp_path, max_age=7200.0, max_bytes=20_000_000)
    )
    await responders.wait_instances(SERVICE, 1)
    info = await js.stream_info(name)
    assert info.config.max_age == 7200 and info.config.max_bytes == 20_000_000
    events = await JetStream(bus).get_batch(stream_name("events", root), f"{root}.events.{SERVICE}.lifecycle")
    kinds = [msgspec.json.decode(m.data)["event"] for m in events.messages]
    assert kinds[:3] == ["started", "stopping", "started"], "lifecycle events are kept in the events stream"


async def test_arguments_are_a_digest_by_default_and_redacted_on_request(
    responders: Responders, bus: Bus, root: str, tmp_path: Path
) -> None:
    """By default a record holds only the SHA-256 of the raw arguments; in redacted mode the arguments appear with secret names masked."""
    raw = b'{"text": "hello", "password": "hunter2"}'
    body = b'{"name":"echo","arguments":' + raw + b"}"
    proc = start_audited(responders)
    await responders.wait_instances(SERVICE, 1)
    await bus.request(f"{root}.{SERVICE}.tools.call.echo", body, {h.CALL_ID: "plain"}, timeout=5)
    assert await wait_count(bus, root, 1, timeout=10) == 1
    proc.terminate()
    proc.wait(10)
    start_audited(responders, write_config(tmp_path / "r.toml", tmp_path, arguments="redacted"))
    await responders.wait_instances(SERVICE, 1)
    await bus.request(
        f"{root}.{SERVICE}.tools.call.echo",
        body,
        {h.CALL_ID: "masked", h.TRACEPARENT: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        timeout=5,
    )
    assert await wait_count(bus, root, 2, timeout=10) == 2
    plain, masked = await read_records(bus, root)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert plain.argsDigest == digest and isinstance(plain.arguments, msgspec.UnsetType)
    assert masked.argsDigest == digest
    assert msgspec.json.decode(masked.arguments) == {"text": "hello", "password": "[redacted]"}  # type: ignore[arg-type]
    assert masked.traceId == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert isinstance(plain.traceId, msgspec.UnsetType)


async def test_a_call_through_the_bridge_is_audited_under_its_client_name(
    responders: Responders, bus: Bus, root: str, bridge_argv: list[str]
) -> None:
    """A tool call made by an MCP client through the bridge gets one record whose identity is the bridge's client name."""
    start_audited(responders)
    await responders.wait_instances(SERVICE, 1)
    with anyio.fail_after(30):
        async with bridge_client([*bridge_argv, "--client-name", "alice"], mode="legacy") as client:
            ok = await client.call_tool(f"{SERVICE}_echo", {"text": "via bridge"})
            assert ok.content[0].text == "via bridge"  # type: ignore[union-attr]
            failed = await client.call_tool(f"{SERVICE}_fail", {"reason": "r"})
            assert failed.is_error
        assert await wait_count(bus, root, 2, timeout=10) == 2
    records = await read_records(bus, root)
    assert [(r.tool, r.outcome, r.identity) for r in records] == [
        ("echo", "ok", "alice"),
        ("fail", "tool_error", "alice"),
    ]
    assert all(r.callId.startswith("bridge-") for r in records)
    assert all(r.verified is False for r in records), (
        "without auth the client name is a claim, marked unverified (issue #11)"
    )


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_clients_trace_context_reaches_the_audit_record(
    responders: Responders, bus: Bus, root: str, bridge_argv: list[str], mode: str
) -> None:
    """A client's `params._meta.traceparent` travels on the bus request, so the record's traceId is the client's trace."""
    start_audited(responders)
    await responders.wait_instances(SERVICE, 1)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with anyio.fail_after(30):
        async with bridge_client(bridge_argv, mode=mode) as client:
            meta = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01", "tracestate": "vendor=1"}
            ok = await client.call_tool(f"{SERVICE}_echo", {"text": "traced"}, meta=meta)  # type: ignore[arg-type]
            assert ok.content[0].text == "traced"  # type: ignore[union-attr]
            await client.call_tool(f"{SERVICE}_echo", {"text": "untraced"})
        assert await wait_count(bus, root, 2, timeout=10) == 2
    records = await read_records(bus, root)
    assert [r.traceId for r in records] == [trace, msgspec.UNSET]


async def test_audit_query_and_tail_print_records_with_filters(
    responders: Responders, bus: Bus, root: str
) -> None:
    """`audit query` prints stored records as a table or JSON lines with filters; `audit tail` prints new ones as they come."""
    start_audited(responders)
    await responders.wait_instances(SERVICE, 1)
    subj = f"{root}.{SERVICE}.tools.call"
    for i in range(3):
        await bus.request(
            f"{subj}.echo",
            call_body("echo", {"text": "x"}),
            {h.CALL_ID: f"q-ok-{i}", h.CLIENT: "bob"},
            timeout=5,
        )
    await bus.request(
        f"{subj}.fail", call_body("fail", {"reason": "x"}), {h.CALL_ID: "q-bad", h.CLIENT: "eve"}, timeout=5
    )
    assert await wait_count(bus, root, 4, timeout=10) == 4
    base = [MCP_NATS, "audit", "query", "--url", responders.url, "--subject-root", root]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*base, *args], env=child_env(), capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, done.stderr
        return done

    lines = run("--json", "--since", "5m").stdout.splitlines()
    assert [json.loads(line)["callId"] for line in lines] == ["q-ok-0", "q-ok-1", "q-ok-2", "q-bad"]
    only_bad = run("--json", "--outcome", "tool_error").stdout.splitlines()
    assert [json.loads(line)["identity"] for line in only_bad] == ["eve"]
    by_bob = run("--identity", "bob", "--tool", "echo").stdout.splitlines()
    assert by_bob[0].split()[:3] == ["TIME", "SERVICE", "TOOL"] and len(by_bob) == 4
    assert run("--json", "--until", "1h", "--since", "2h").stdout == ""
    bad_time = subprocess.run(
        [*base, "--since", "yesterday"], env=child_env(), capture_output=True, text=True, timeout=20
    )
    assert bad_time.returncode == 2 and "not a time" in bad_time.stderr

    # tail reads from --since by stream sequence, then follows: records written before or after it
    # started are both seen, exactly once, so no readiness handshake is needed.
    tail = subprocess.Popen(
        [
            MCP_NATS,
            "audit",
            "tail",
            "--url",
            responders.url,
            "--subject-root",
            root,
            "--json",
            "--since",
            "1h",
            "--count",
            "5",
            "--outcome",
            "ok",
        ],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for i in range(2):
            await bus.request(
                f"{subj}.fail", call_body("fail", {"reason": "t"}), {h.CALL_ID: f"t-bad-{i}"}, timeout=5
            )
            await bus.request(
                f"{subj}.echo", call_body("echo", {"text": "t"}), {h.CALL_ID: f"t-{i}"}, timeout=5
            )
        out, err = tail.communicate(timeout=20)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(5)
    assert tail.returncode == 0, err
    printed = [json.loads(line)["callId"] for line in out.splitlines()]
    assert printed == ["q-ok-0", "q-ok-1", "q-ok-2", "t-0", "t-1"]


async def test_query_without_a_stream_says_how_to_get_one(nats_settings: object, root: str) -> None:
    """`audit query` against a root that has no audit stream yet exits 1 with a sentence naming the stream."""
    url = nats_settings.url  # type: ignore[attr-defined]
    done = subprocess.run(
        [MCP_NATS, "audit", "query", "--url", url, "--subject-root", root],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 1
    assert f"MCP_AUDIT_{root}" in done.stderr


async def test_deadline_exceeded_is_the_callers_problem_not_the_records(
    bus: Bus, responders: Responders, root: str
) -> None:
    """A caller that gives up before the reply still leaves exactly one record of the call (finished by the responder)."""
    start_audited(responders)
    await responders.wait_instances(SERVICE, 1)
    with pytest.raises((DeadlineExceeded, BusError)):
        await bus.request(
            f"{root}.{SERVICE}.tools.call.wait",
            call_body("wait", {"seconds": 0.5}),
            {h.CALL_ID: "impatient"},
            timeout=0.1,
        )
    assert await wait_count(bus, root, 1, timeout=10) == 1
    (rec,) = await read_records(bus, root)
    assert rec.callId == "impatient" and rec.outcome == "ok" and rec.durationMs >= 400


async def test_calls_refused_as_overloaded_are_audited_too(
    responders: Responders, bus: Bus, root: str, tmp_path: Path
) -> None:
    """A call refused at once as overloaded (-31007) got an answer, so it has its record too: one per call, whatever happened."""
    cfg = tmp_path / "small.toml"
    cfg.write_text(f'state_dir = "{tmp_path / "state"}"\n[responder]\nmax_concurrency = 2\nmax_pending = 3\n')
    start_audited(responders, cfg)
    await responders.wait_instances(SERVICE, 1)
    subj = f"{root}.{SERVICE}.tools.call.wait"
    ids = [f"burst-{i}" for i in range(20)]
    with anyio.fail_after(30):
        replies = await asyncio.gather(
            *(
                bus.request(
                    subj, call_body("wait", {"seconds": 0.5}), {h.CALL_ID: cid, h.CLIENT: "load"}, timeout=10
                )
                for cid in ids
            )
        )
        refused = {
            cid
            for cid, r in zip(ids, replies, strict=True)
            if (r.headers or {}).get(h.SERVICE_ERROR_CODE) == "-31007"
        }
        assert len(refused) >= 10, (
            f"capacity is 5 of 20 simultaneous calls, yet only {len(refused)} were refused"
        )
        assert await wait_count(bus, root, len(ids), timeout=20) == len(ids)
        records = await read_records(bus, root)
    by_id = {r.callId: r for r in records}
    assert len(records) == len(by_id) == len(ids) and set(by_id) == set(ids)
    assert {cid for cid, r in by_id.items() if r.errorCode == -31007} == refused
    assert all(
        by_id[c].outcome == "protocol_error" and by_id[c].tool == "wait" and by_id[c].identity == "load"
        for c in refused
    )
    assert all(by_id[c].outcome == "ok" for c in set(ids) - refused)
