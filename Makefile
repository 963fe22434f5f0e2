# LiveRoom — `make run` and `make test` set up everything they need on a fresh machine.
PY          ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
SHARED      ?= ../shared
LLAMA_PIN   := llama-cpp-python[server]==0.3.36
LLAMA_WHEEL_SHA := 9d88e26028f298cf0acb2b574308fa0843b3f18fa082ae2dd9c7b7b22f3a5197
RAPIDOCR_PIN := rapidocr-onnxruntime==1.4.4
MERCHANT    ?= demo
PYTEST_ARGS ?=

.PHONY: run test test-all lint setup system-deps models demo-kb evals bench clean

ROOM        ?= $(MERCHANT)-room

run: setup system-deps models demo-kb
	$(BIN)/liveroom audience seed --merchant $(MERCHANT) --viewers 3000
	@# Public channels answer only in registered rooms: the demo room (prints its URL).
	$(BIN)/liveroom rooms create --merchant $(MERCHANT) --room $(ROOM) --title "演示直播间" --if-missing
	$(BIN)/liveroom serve

test: lint system-deps models
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# Layers, lint, format and types: the same checks CI runs before the suite.
lint: setup
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Everything, including the slow end-to-end cases CI samples.
test-all: setup system-deps models
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	@# RapidOCR without its `opencv-python` requirement: both OpenCV wheels write the same cv2/ package,
	@# and the GUI build over the headless one broke cv2.CascadeClassifier. Its other requirements are
	@# pinned in pyproject.toml; `pip check` reports the missing opencv-python, and that is expected.
	$(BIN)/pip install -q --no-deps "$(RAPIDOCR_PIN)"
	@# llama-cpp-python: the prebuilt wheel beside the project when it is there (and intact), else build.
	@set -e; whl=$$(ls $(SHARED)/wheels/llama_cpp_python-0.3.36-*.whl 2>/dev/null | head -n1); \
	if [ -n "$$whl" ] && echo "$(LLAMA_WHEEL_SHA)  $$whl" | sha256sum -c --status; then \
	  echo "llama-cpp-python: prebuilt wheel $$whl"; \
	  $(BIN)/pip install -q --find-links $(SHARED)/wheels "$(LLAMA_PIN)"; \
	else \
	  echo "llama-cpp-python: building from source (6-15 min)"; \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install -q "$(LLAMA_PIN)"; \
	fi
	touch $@

system-deps:
	bash scripts/system_deps.sh

models: setup
	$(BIN)/liveroom models install

demo-kb: setup
	$(BIN)/liveroom kb import --merchant $(MERCHANT) --if-changed knowledge/demo

evals: setup models
	$(BIN)/python -m evals.retrieval
	$(BIN)/python -m evals.answers
	$(BIN)/python -m evals.adversarial

bench: setup
	$(BIN)/python -m benchmarks.retrieval
	$(BIN)/python -m benchmarks.ws_load

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
