# steercode — `make run` and `make test` are all a newcomer needs (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.steercode-installed

.PHONY: setup run test test-fast lint clean doctor editor-setup llama-server-setup vsix

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "steercode needs Python >= 3.11 (set PYTHON=...)"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel

# llama-cpp-python builds from source (~5-7 min on 2 cores), without llamafile's GEMM: its batched
# logits differ from single-token ones, which would make drafting inexact (see ARCHITECTURE.md). A wheel built
# with default flags (e.g. from pip's cache) is detected and rebuilt.
LLAMA_CPP = llama-cpp-python==0.3.36
$(STAMP): pyproject.toml | $(PY)
	@if ! $(PY) -c 'import llama_cpp, sys; sys.exit("LLAMAFILE = 1" in llama_cpp.llama_print_system_info().decode())' 2>/dev/null; then \
		echo "building $(LLAMA_CPP) without llamafile (one-time, several minutes)"; \
		CMAKE_ARGS="-DGGML_LLAMAFILE=OFF" $(PY) -m pip install --quiet --no-cache-dir --force-reinstall --no-binary llama-cpp-python $(LLAMA_CPP); \
	fi
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -c 'from completion.models import embedded_model_path; print("embedded model:", embedded_model_path())'
	$(PY) -c 'from completion.models import embedded_model_path; from completion.vocab_head import code_model_path; print("code-vocabulary model:", code_model_path(embedded_model_path()).path)'
	$(VENV)/bin/steercode install-servers
	@touch $(STAMP)

setup: $(STAMP)

# The main job: a headless completion at a cursor in the bundled example, with timings
# (the first run is cold, the others reuse the KV cache).
run: setup
	$(VENV)/bin/steercode complete examples/fibonacci.py --line 7 --character 4 --repeat 3 --verbose

# Every test, the real-editor and team-mode ones included (their set-up is cached between runs).
test: setup editor-setup llama-server-setup
	$(PY) -m pytest -q

editor-setup:
	tests/editors/setup.sh

# llama-server built from the llama.cpp inside the pinned llama-cpp-python sdist (team-mode tests;
# cached in the steercode cache directory, a few minutes once, then instant)
llama-server-setup: | $(PY)
	PY=$(PY) LLAMA_CPP_PYTHON_VERSION=$(subst llama-cpp-python==,,$(LLAMA_CPP)) tests/llama_server/setup.sh

vsix:
	cd vscode-extension && npm install --no-audit --no-fund && npm run package

test-fast: setup
	$(PY) -m pytest -q -m "not model"

test-no-editors: setup
	$(PY) -m pytest -q -m "not editor"

lint: setup
	$(VENV)/bin/ruff check lsp_server completion monitors tests benchmarks

doctor: setup
	$(VENV)/bin/steercode doctor

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache test-artifacts
