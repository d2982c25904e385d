"""A minimal stdio MCP server for the attach pool tests (no SDK: JSON-RPC lines on stdin/stdout).

Tools: `pid` (read-only: its process id), `wait` (read-only: sleeps `seconds`, then its pid),
`append` (neither read-only nor idempotent: sleeps `seconds`, then its pid). Run: python -m tests.stdio_child
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

TOOLS = [
    {"name": "pid", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}},
    {
        "name": "wait",
        "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}},
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "append",
        "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}},
        "annotations": {"readOnlyHint": False, "idempotentHint": False},
    },
]
_lock = threading.Lock()


def send(msg: dict[str, Any]) -> None:
    with _lock:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()


def call(rid: Any, params: dict[str, Any]) -> None:
    seconds = float((params.get("arguments") or {}).get("seconds", 0))
    time.sleep(seconds)
    send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": str(os.getpid())}]}})


def main() -> None:
    print(f"stdio_child {os.getpid()} starting", file=sys.stderr, flush=True)  # noqa: T201
    for line in sys.stdin:
        msg = json.loads(line)
        method, rid = msg.get("method"), msg.get("id")
        if method == "initialize":
            send(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "result": {
                        "protocolVersion": msg["params"]["protocolVersion"],
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "stdio-child", "version": "1.0.0"},
                    },
                }
            )
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            threading.Thread(target=call, args=(rid, msg["params"]), daemon=True).start()
        elif rid is not None:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"no method {method}"}})


if __name__ == "__main__":
    main()
