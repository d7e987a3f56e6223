# The README's commands. Every target sets up the virtual environment first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Open Inference Protocol clients (tritonclient, kserve) live apart, as on a user's machine:
# their protobuf / ml-dtypes / psutil pins do not fit the service's environment.
CLIENTS := .venv-clients
CLIENTS_STAMP := $(CLIENTS)/.installed
HTTP_PORT ?= 3000
GRPC_PORT ?= 50051
HOST ?= http://localhost:$(HTTP_PORT)
MODEL_NAME := har-cnn-bilstm

.PHONY: help setup clients serve test lock-image test-fast docs docs-settings lint typecheck format demo data train proto loadtest bench reliability image image-test pod-test clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned dependencies

$(CLIENTS_STAMP): tests/clients/requirements.txt
	test -x $(CLIENTS)/bin/python || $(PYTHON) -m venv $(CLIENTS)
	$(CLIENTS)/bin/python -m pip install -q --upgrade pip
	$(CLIENTS)/bin/python -m pip install -q -r tests/clients/requirements.txt
	touch $(CLIENTS_STAMP)

clients: $(CLIENTS_STAMP)  ## .venv-clients: tritonclient + kserve (pinned, tests/clients/requirements.txt) for the V2 protocol tests

# `ensure-model` prints the tag to serve (HAR_MODEL_URI=models:/NAME@ALIAS resolved to one
# registry version, else HAR_MODEL_TAG or the bundled model); every process of the server
# then serves exactly that tag, whatever the registry's alias does meanwhile.
serve: $(STAMP)  ## serve the model (HAR_MODEL_URI or the bundled one): HTTP :3000, gRPC :50051
	tag="$$($(BIN)/python -m har ensure-model)" && echo "serving $$tag" && \
	shadow="$$($(BIN)/python -m har ensure-model --shadow)" && \
	HAR_MODEL_TAG="$$tag" HAR_MODEL_URI= HAR_SHADOW_MODEL_TAG="$$shadow" HAR_SHADOW_MODEL_URI= \
	HAR_GRPC_PORT=$(GRPC_PORT) \
		$(BIN)/bentoml serve service:HARService --port $(HTTP_PORT)

test: $(STAMP) $(CLIENTS_STAMP)  ## lint, type-check and the import contract, build the docs site (strict), then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d .site
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## the quick loop: unit + in-process service tests (no e2e, no slow; under a minute)
	$(BIN)/python -m pytest -q -m "not e2e and not slow" tests/unit tests/project tests/service

docs: $(STAMP)  ## build the docs site (docs/, mkdocs.yml) into .site/; strict: a broken link or a page left out of the nav fails
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d .site

docs-settings: $(STAMP)  ## regenerate the settings table in docs/settings.md from har/settings.py
	$(BIN)/python -m har settings-table --write

lint: $(STAMP)  ## ruff lint + format check, mypy type check, the import contract (layers, BentoML at the edge)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

typecheck: $(STAMP)  ## mypy over har/ (configuration in pyproject.toml)
	$(BIN)/mypy

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

demo: $(STAMP)  ## score the committed production recording offline
	$(BIN)/python -m har predict data/production/session_canonical_100hz.csv

data: $(STAMP)  ## materialise the labelled data set under data/raw/
	$(BIN)/python -m har data

train: $(STAMP)  ## retrain + evaluate the bundled model (~15 min on 2 cores), log + register it in MLflow
	$(BIN)/python -m har train-reference
	$(BIN)/python -m har register models/pretrained/har-cnn-bilstm.keras \
		--card models/pretrained/card.json --training-run

proto: $(STAMP)  ## regenerate the gRPC stubs from har/v1/har.proto and the vendored har/oip/open_inference_grpc.proto
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. har/v1/har.proto
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. har/oip/open_inference_grpc.proto

lock-image: $(STAMP)  ## regenerate container/requirements*.lock (the image's packages, without and with TensorFlow) from requirements.lock
	$(BIN)/python container/runtime_lock.py

# The Bento carries the tag `ensure-model` prints (bentofile.yaml's model entry replaced,
# HAR_MODEL_TAG set in the image) and, when HAR_SHADOW_MODEL_URI / _TAG is set, the shadow
# model and its service (HAR_SHADOW_MODEL_TAG set in the image), in a copy of the build file
# under .image/. The image installs container/requirements.lock, checked up to date first,
# or container/requirements-tensorflow.lock when the model or shadow serves on TensorFlow
# (`python -m har runtime`; HAR_RUNTIME=tensorflow make image forces it); HAR_IMAGE_LOCK in
# the image names the one it installed.

image: $(STAMP)  ## build the Bento + container image of the model to serve (docker or podman)
	$(BIN)/python container/runtime_lock.py --check
	tag="$$($(BIN)/python -m har ensure-model)" && echo "image of $$tag" && \
	shadow="$$($(BIN)/python -m har ensure-model --shadow)" && echo "shadow: $${shadow:-none}" && \
	other="$$(test "$$shadow" = "$$tag" || echo "$$shadow")" && \
	runtime="$$($(BIN)/python -m har runtime $$tag $$other)" && echo "runtime: $$runtime" && \
	lock="$$(test "$$runtime" = onnx && echo container/requirements.lock || echo container/requirements-tensorflow.lock)" && \
	mkdir -p .image && \
	sed -e "s|^  - $(MODEL_NAME):latest$$|  - $$tag$${other:+\n  - $$other}|" \
		-e "s|^envs:$$|envs:\n  - name: HAR_MODEL_TAG\n    value: \"$$tag\"$${shadow:+\n  - name: HAR_SHADOW_MODEL_TAG\n    value: \"$$shadow\"}\n  - name: HAR_IMAGE_LOCK\n    value: \"$$lock\"|" \
		-e "s|^  requirements_txt: container/requirements.lock$$|  requirements_txt: $$lock|" \
		bentofile.yaml > .image/bentofile.yaml && \
	grep -q -- "- $$tag$$" .image/bentofile.yaml && \
	HAR_MODEL_TAG="$$tag" HAR_MODEL_URI= HAR_SHADOW_MODEL_TAG="$$shadow" HAR_SHADOW_MODEL_URI= \
		HAR_BENTOFILE=.image/bentofile.yaml bash container/build-image.sh

image-test: $(STAMP) $(CLIENTS_STAMP)  ## the built image: smoke test, start time and memory, then the contract suite against it
	bash container/image-test.sh
	$(BIN)/python -m pytest -p no:cacheprovider tests/contract --target image

pod-test: $(STAMP)  ## play deploy/k8s as two pods with podman kube play (no cluster): probes, predict, shared profiles
	bash container/pod-test.sh

USERS ?= 64
DURATION ?= 60s
loadtest: $(STAMP)  ## headless Locust run against a running `make serve`; non-zero on any failure
	mkdir -p load_tests/reports
	$(BIN)/locust -f load_tests/locustfile.py --headless -u $(USERS) -r 16 -t $(DURATION) \
		--host $(HOST) --csv load_tests/reports/locust --html load_tests/reports/locust.html \
		--only-summary --exit-code-on-error 1

bench: $(STAMP)  ## serving benchmark: raw model, naive baseline, HTTP, gRPC, monitoring/tracing/sampling/placement on/off (about 40 min)
	$(BIN)/python -m load_tests.bench --ab monitoring,tracing,sampling,placement

observe: $(STAMP)  ## Prometheus + Alertmanager (local processes, shipped configs) for a running `make serve`; data in logs/observe/
	$(BIN)/python deploy/observe.py --har localhost:$(HTTP_PORT) --dir logs/observe

reliability: $(STAMP)  ## fuzz, malformed gRPC, resource bounds, kill cases vs real servers (~15 min); non-zero on any failure
	$(BIN)/python -m har ensure-model
	$(BIN)/python -m load_tests.reliability $(RELIABILITY_ARGS)

clean:  ## remove the virtual environment and generated files
	rm -rf $(VENV) $(CLIENTS) logs reports load_tests/reports .image
