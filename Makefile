# Two commands for a newcomer: `make demo` (the whole toy pipeline) and `make test`.
PYTHON ?= python3
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export MMG4_CONFIG ?= configs/toy.yaml
export NO_ALBUMENTATIONS_UPDATE = 1
STAMP := .make/installed
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: setup demo ui test test-all validate clean table2

setup: $(STAMP)

# Installs the project and its pinned dependencies into the current Python (re-runs when pyproject changes).
$(STAMP): pyproject.toml
	$(PYTHON) -m pip install -q -e '.[dev]'
	@mkdir -p .make && touch $@

# the local Dagster instance (run history for the UI); `make clean` removes it. An empty dagster.yaml makes
# Dagster print its telemetry banner on every command, and the toy profile is meant to run offline: turn
# telemetry off. A double-colon rule without prerequisites runs every time, so a file left empty by an
# older version of this target gets the setting too; one that already says `telemetry:` is left alone.
$(DAGSTER_HOME)/dagster.yaml::
	@mkdir -p $(DAGSTER_HOME)
	@grep -qs '^telemetry:' $@ || printf '%s\n' '# written by `make`: no telemetry banner, no usage data sent' \
		'telemetry:' '  enabled: false' >> $@

demo: setup $(DAGSTER_HOME)/dagster.yaml
	$(PYTHON) demo.py

ui: setup $(DAGSTER_HOME)/dagster.yaml
	dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

validate: setup $(DAGSTER_HOME)/dagster.yaml
	dagster definitions validate -w workspace.yaml

# The toy Table 2 (not part of the demo): stage 2 (and 3) of every row of configs/ablations/, three seeds each,
# evaluated on toy MMMU and MMMU Multi; needs `make demo` first (stage 1 and the shards). Then the report
# asset is rendered again, so the UI and lake/toy/evaluation/report/ show the new Table 2.
table2: setup $(DAGSTER_HOME)/dagster.yaml
	$(PYTHON) -m pipeline.evaluate table2
	dagster asset materialize -m definitions --select mmmu_report

test: setup
	$(PYTHON) -m pytest

test-all: setup
	$(PYTHON) -m pytest -m ""

clean:
	rm -rf lake .dagster_home .make

# The README's screenshots (docs/img/), taken by the browser test (needs Debian's chromium).
.PHONY: screenshots
screenshots: setup
	MMG4_SCREENSHOTS=docs/img $(PYTHON) -m pytest -q tests/test_ui_browser.py

# Docker: the images and the compose stack (docs/scale-out.md). BASE_IMAGE=localhost/bookworm:local after
# docker/build-base.sh where no image registry is reachable; TORCH_INDEX_URL= (empty) where PyTorch's
# CPU index is not.
COMPOSE = docker-compose -p mmg4 -f docker/compose.yaml
DOCKER_BUILD_ARGS = $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) $(if $(filter undefined,$(origin TORCH_INDEX_URL)),,--build-arg TORCH_INDEX_URL=$(TORCH_INDEX_URL))
.PHONY: image image-cuda compose-up compose-down
image:
	docker build -f docker/Dockerfile $(DOCKER_BUILD_ARGS) -t mmg4:cpu .
image-cuda:
	docker build -f docker/Dockerfile.cuda $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t mmg4:cuda .
compose-up: image
	MMG4_BASE_IMAGE=$(or $(BASE_IMAGE),debian:bookworm-slim) $(COMPOSE) up -d --build
compose-down:
	$(COMPOSE) down
