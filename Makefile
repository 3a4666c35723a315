# The two quick-start commands: `make serve` (install, validate and serve the example kernel)
# and `make test` (install everything the tests need, then run them). Both work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
KERNEL ?= examples/kernels/iris-classifier
PORT   ?= 8080
# torch: exactly this version resolves to the CPU build on this project's machines.
TORCH_PIN ?= torch==2.13.0

.PHONY: install install-dev serve validate test lint examples

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q -e ".[torch,grpc]"

install-dev: $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q -e ".[torch,grpc,dev,images,iac,tracing,parquet]"

validate: install
	$(BIN)/shim validate examples/kernels/*

serve: validate
	$(BIN)/shim serve $(KERNEL) --port $(PORT) --log-format text

examples: install-dev
	$(BIN)/python examples/build_examples.py

lint: install-dev
	$(BIN)/ruff check shim tests examples benchmarks

# System tools for the container and Terraform tests (podman, runc, debootstrap; a terraform binary).
tools:
	bash .ci/install-containers.sh
	bash .ci/install-registry.sh
	bash .ci/install-terraform.sh
	bash .ci/install-checkov.sh
	bash .ci/fetch-provider-schemas.sh
	bash .ci/install-kserve-client.sh

test: install-dev tools
	PATH="$(CURDIR)/.ci/bin:$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q -ra --durations=25 tests
