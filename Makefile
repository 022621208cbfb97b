# The two commands a newcomer needs:  `make run`  and  `make test`  (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements

# The embedded default: SQLite in ./var, no Redis, the demo config's fake model, master key sk-1234
# unless GATEWAY_MASTER_KEY is set.
GATEWAY_MASTER_KEY ?= sk-1234
# The test suite's PostgreSQL (pytest-django creates and drops its own test database there).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: run worker beat test test-postgres test-sqlite install clean bench bench-smoke bench-soak bench-ab

# .venv serves both `make run` and the tests: the runtime (requirements.txt) plus the test and bench tools
# (requirements-test.txt, which includes requirements.txt). The production image installs the runtime only.
$(STAMP): requirements.txt requirements-test.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $(STAMP)

install: $(STAMP)

## Start the gateway on http://127.0.0.1:4000 (CONFIG=path/to/config.yaml to use your own)
run: $(STAMP)
	GATEWAY_MASTER_KEY=$(GATEWAY_MASTER_KEY) $(PY) manage.py gateway $(if $(CONFIG),--config $(CONFIG)) $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

## Background jobs with Redis (REDIS_URL set): the Celery worker, and beat (exactly one); docs/background-jobs.md
worker: $(STAMP)
	$(VENV)/bin/celery -A gateway_project worker --loglevel info

beat: $(STAMP)
	$(VENV)/bin/celery -A gateway_project beat --loglevel info

## Run the whole test suite: on PostgreSQL, then again on SQLite (the embedded default)
test: $(STAMP)
	bin/ensure-services
	bin/install-test-deps
	$(MAKE) --no-print-directory test-postgres test-sqlite

test-postgres: $(STAMP)
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest $(PYTEST_ARGS)

test-sqlite: $(STAMP)
	DATABASE_URL=sqlite:///$(CURDIR)/var/test.sqlite3 $(PY) -m pytest $(PYTEST_ARGS)

## Benchmark vs direct and the LiteLLM proxy (docs/performance.md; installs wrk via apt, LiteLLM into
## bench/.venv-litellm and the gateway's runtime requirements alone into bench/.venv-gateway, which is what
## it measures); BENCH_ARGS narrows it, e.g. BENCH_ARGS='--concurrency 10 --repeats 1 --no-docs'
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
BENCH_ARGS ?=
bench: $(STAMP)
	command -v wrk >/dev/null || (command -v apt-get >/dev/null && apt-get install -y wrk) || echo "bench: no wrk, the asyncio generator drives every point"
	DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) -m bench $(BENCH_ARGS)

bench-smoke: $(STAMP)
	DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) -m bench --smoke $(BENCH_ARGS)

bench-soak: $(STAMP)
	DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) -m bench --soak 100000 $(BENCH_ARGS)

## Two trees side by side at concurrency 1: BASE (a git revision) against the working tree (bench/ab.py),
## e.g. make bench-ab BASE=HEAD~1 BENCH_ARGS='--awake --buffered'
BASE ?= HEAD
bench-ab: $(STAMP)
	DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) -m bench.ab --base $(BASE) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
