# The two commands a newcomer needs: `make demo` runs the loop locally, `make test` runs the tests.
# Both create .venv and install the development set (requirements-dev.lock: the runtime set plus tests and
# emulator) when it is missing or stale. A deployment installs requirements.lock only (see the Dockerfile).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test deploy-test bench lock emulator labelstudio clean

$(STAMP): requirements-dev.lock pyproject.toml local/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python --quiet -r requirements-dev.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e . -e local
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rekfeedback-local demo $(DEMO_ARGS)

# One pytest worker per core, the Label Studio tests in one process beside them (TEST_WORKERS=0: one process).
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python scripts/run_tests.py --workers $(TEST_WORKERS) $(PYTEST_ARGS)

# The deployment test: Airflow's components on PostgreSQL + Redis + Celery, from a venv holding only what a
# deployment installs (the runtime lock and the provider, not editable); the emulator runs from .venv.
DEPLOY_VENV := .deploy/venv
$(DEPLOY_VENV)/.installed: requirements.lock pyproject.toml $(STAMP)
	test -x $(DEPLOY_VENV)/bin/python || $(PYTHON) -m venv $(DEPLOY_VENV)
	$(BIN)/uv pip install --python $(DEPLOY_VENV)/bin/python --quiet -r requirements.lock
	touch $@

# The provider is reinstalled every time (not editable, as a deployment installs it) so it is never stale.
deploy-test: $(STAMP) $(DEPLOY_VENV)/.installed
	$(BIN)/uv pip install --python $(DEPLOY_VENV)/bin/python --quiet --no-deps --reinstall-package rekfeedback .
	$(BIN)/python scripts/deploy_test.py --airflow-venv $(DEPLOY_VENV) $(DEPLOY_TEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/inference_throughput.py
	$(BIN)/python bench/merge_scaling.py
	$(BIN)/python bench/answer_quality.py
	$(BIN)/python bench/dag_parse_time.py
	$(BIN)/python bench/labeling_efficiency.py

emulator: $(STAMP)
	$(BIN)/rekfeedback-local emulator --host 127.0.0.1 --port 4566

labelstudio:
	bash scripts/labelstudio.sh start

# Both locks in one go: the runtime one first, then the development one constrained by it (same pins).
lock:
	$(BIN)/uv pip compile --quiet requirements.in --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile --quiet requirements-dev.in --python-version 3.11 -c requirements.lock -o requirements-dev.lock

clean:
	rm -rf $(VENV) .deploy .pytest_cache
