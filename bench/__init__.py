"""The mcp-nats benchmark (`python -m bench`, `make bench`; not part of `make test`).

Drives the real bridge over stdio, the reference filesystem server (node) and a minimal
Python SDK server with one load generator, in the same run; drives responders directly over
NATS; reports latency, calls/s, CPU per call, peak RSS, cold start and the design targets.
"""
