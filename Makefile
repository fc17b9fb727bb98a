# errbot-att-sms: `make demo` and `make test` do all the set-up.
#
# The virtual env lives OUTSIDE the repository on purpose: errbot globs **/*.plug under
# BOT_EXTRA_PLUGIN_DIR (the repo root), and a venv inside it holds errbot's own .plug
# files, which makes testbot die with SystemExit.

PYTHON ?= python3
VENV ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/errbot-att-sms/venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-installed
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)

.PHONY: venv test lint demo sandbox bench clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $(STAMP)

# mypy: which files, and strict on the plain modules, is set in pyproject.toml [tool.mypy].
MYPY := $(VENV)/bin/mypy

lint: venv
	$(VENV)/bin/ruff check plugins carrier_sandbox errbot_storage tests benchmarks scripts config_template.py
	$(MYPY)

test: venv
	@# The IRC end-to-end tests need ngircd (Debian package; installing it needs root).
	@# Outside CI a machine without it skips those tests with the reason.
	bash scripts/ensure-ngircd.sh || test -z "$$CI"
	@# The PostgreSQL store's tests need a real server (Debian's postgresql; same rule).
	bash scripts/ensure-postgres.sh >/dev/null || test -z "$$CI"
	@# Pages from alerts are tested end to end with Debian's prometheus-alertmanager (same rule).
	bash scripts/ensure-alertmanager.sh || test -z "$$CI"
	$(VENV)/bin/ruff check plugins carrier_sandbox errbot_storage tests benchmarks scripts config_template.py
	$(MYPY)
	$(PY) -m pytest -q -ra

demo: venv
	VENV=$(VENV) bash scripts/demo.sh

sandbox: venv
	$(PY) -m carrier_sandbox --host 127.0.0.1 --port 8080 --registration demo

bench: venv
	$(PY) benchmarks/run.py
	$(PY) benchmarks/alerts_bench.py
	@# Replicas on PostgreSQL (ngircd and PostgreSQL from Debian's packages; about 6 min).
	bash scripts/ensure-ngircd.sh && bash scripts/ensure-postgres.sh >/dev/null
	$(PY) benchmarks/replicas.py

clean-venv:
	rm -rf $(VENV)
