# The README's commands. Every target sets up the virtual environment first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HTTP_PORT ?= 3000
GRPC_PORT ?= 50051
HOST ?= http://localhost:$(HTTP_PORT)

.PHONY: help setup serve test lint typecheck format demo data train proto loadtest bench image image-test clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned dependencies

serve: $(STAMP)  ## serve the model: HTTP on :3000, gRPC on :50051
	$(BIN)/python -m har ensure-model
	shadow="$$($(BIN)/python -m har ensure-model --shadow)" && \
	HAR_SHADOW_MODEL_TAG="$$shadow" HAR_SHADOW_MODEL_URI= HAR_GRPC_PORT=$(GRPC_PORT) \
		$(BIN)/bentoml serve service:HARService --port $(HTTP_PORT)

test: $(STAMP)  ## lint and type-check, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff lint + format check, mypy type check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(STAMP)  ## mypy over har/ (configuration in pyproject.toml)
	$(BIN)/mypy

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

demo: $(STAMP)  ## score the committed production recording offline
	$(BIN)/python -m har predict data/production/session_canonical_100hz.csv

data: $(STAMP)  ## materialise the labelled data set under data/raw/
	$(BIN)/python -m har data

train: $(STAMP)  ## retrain + evaluate the bundled reference model (~15 min on 2 cores)
	$(BIN)/python -m har train-reference

proto: $(STAMP)  ## regenerate the gRPC stubs from har/v1/har.proto
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. har/v1/har.proto

image: $(STAMP)  ## build the Bento and its container image (docker if a daemon answers, else podman)
	$(BIN)/python -m har ensure-model
	bash container/build-image.sh

image-test: $(STAMP)  ## run the image, smoke-test HTTP + gRPC, check it does not run as root
	bash container/image-test.sh

USERS ?= 64
DURATION ?= 60s
loadtest: $(STAMP)  ## headless Locust run against a running `make serve`; non-zero on any failure
	mkdir -p load_tests/reports
	$(BIN)/locust -f load_tests/locustfile.py --headless -u $(USERS) -r 16 -t $(DURATION) \
		--host $(HOST) --csv load_tests/reports/locust --html load_tests/reports/locust.html \
		--only-summary --exit-code-on-error 1

bench: $(STAMP)  ## serving benchmark: raw model, naive baseline, HTTP, gRPC, monitoring on/off (about 17 min)
	$(BIN)/python -m load_tests.bench --monitoring both

observe: $(STAMP)  ## Prometheus + Alertmanager (local processes, shipped configs) for a running `make serve`; data in logs/observe/
	$(BIN)/python deploy/observe.py --har localhost:$(HTTP_PORT) --dir logs/observe

clean:  ## remove the virtual environment and generated files
	rm -rf $(VENV) logs reports load_tests/reports .image
