# The two commands a newcomer needs: `make demo` runs the loop locally, `make test` runs the tests.
# Both create .venv and install the pinned set (requirements.lock) when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lock emulator labelstudio clean

$(STAMP): requirements.lock pyproject.toml local/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python --quiet -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e . -e local
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rekfeedback-local demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/inference_throughput.py
	$(BIN)/python bench/merge_scaling.py
	$(BIN)/python bench/answer_quality.py

emulator: $(STAMP)
	$(BIN)/rekfeedback-local emulator --host 127.0.0.1 --port 4566

labelstudio:
	bash scripts/labelstudio.sh start

lock:
	$(BIN)/uv pip compile requirements.in --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache
