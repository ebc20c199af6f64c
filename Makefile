# Quick start: `make demo` and `make test` on a fresh machine with Python 3.11+ and make.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO := data/demo

.PHONY: venv demo test lint typecheck pytest browser openapi athena bench checkov lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: Python 3.11+ is needed (python3.11, python3.12 or python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m service.demo --root $(DEMO)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP) browser
	$(VENV)/bin/pytest -n 2 --dist loadgroup

# The console's browser tests drive Debian's Chromium through chromium-driver (no browser download).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
		else \
			echo "error: the browser tests need Chromium: sudo apt-get install -y chromium chromium-driver"; exit 1; \
		fi; \
	fi

test: lint typecheck pytest

openapi: $(STAMP)
	$(PY) -m service.api.openapi_export openapi/openapi.json

# Write the Glue tables and Athena named queries (from transforms/schemas.py and
# service/sql/named/*.sql) into infra/template.yaml; tests/infra fails until it is rerun.
athena: $(STAMP)
	$(PY) -m infra.athena

# checkov pins an older boto3 than the project, so it lives in its own venv; every finding is
# fixed or skipped with a reason in the template's Metadata (tests/infra checks the reasons).
checkov: $(STAMP)
	test -x .venv-checkov/bin/checkov || { $(PYTHON) -m venv .venv-checkov && .venv-checkov/bin/pip install --quiet "checkov>=3.2,<4"; }
	$(PY) -m infra.transform build/infra/template.json
	.venv-checkov/bin/checkov -f build/infra/template.json --framework cloudformation --skip-download --quiet --compact

bench: $(STAMP)
	$(PY) -m bench.run
	$(PY) -m bench.streaming --orders 500000,1000000 --shapes jsonl,wrapped,stars --out bench/results/streaming-small
	$(PY) -m bench.s3_requests --runs 500 --maintain-every 48

# One sales_order baseline of 1M and of 10M orders in ONE file, JSON Lines and wrapped array
# (~3.3 GB of disk per shape while it runs, several minutes).
.PHONY: bench-huge
bench-huge: $(STAMP)
	$(PY) -m bench.streaming --orders 1000000,10000000

# Refresh the pinned versions (dev constraints and the Lambda image's runtime requirements).
lock:
	rm -rf /tmp/totesys-lock && $(PYTHON) -m venv /tmp/totesys-lock
	/tmp/totesys-lock/bin/pip install --quiet . && /tmp/totesys-lock/bin/pip freeze --exclude totesys-transform > requirements-lambda.txt
	/tmp/totesys-lock/bin/pip install --quiet '.[dev]' && /tmp/totesys-lock/bin/pip freeze --exclude totesys-transform > constraints.txt

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
