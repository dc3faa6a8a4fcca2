# The two commands a newcomer needs: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml sandbox/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: all install test lint typecheck layers pytest demo bench crds clean controlplane

all: test

$(STAMP): pyproject.toml sandbox/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./sandbox -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check operator sandbox tests bench
	$(BIN)/ruff format --check operator sandbox tests bench

typecheck: install
	$(BIN)/mypy

layers: install
	$(BIN)/lint-imports

# Both test grounds, as two pytest sessions at once: the sandbox, and the real control plane when
# `make controlplane` could build its binaries (without Go the real ground's tests skip, and its
# session says so at the start and the end). GROUND=sandbox or GROUND=real runs one.
GROUND ?= both

pytest: install controlplane
	tools/pytest-grounds.sh $(BIN)/pytest $(GROUND) -q -p no:cacheprovider

test: lint typecheck layers pytest

crds: install
	$(BIN)/python -m koos.cli.crds

demo: install
	$(BIN)/python -m koos.cli.demo

bench: install
	$(BIN)/python bench/sandbox_requests.py --write bench/results/sandbox-requests.md
	$(BIN)/python bench/operator_latency.py --write bench/results/operator-latency.md
	$(BIN)/python bench/schedule_fires.py --write bench/results/schedule-fires.md
	$(BIN)/python bench/loop_scale.py --write bench/results/loop-scale.md

# The real test ground's binaries (kube-apiserver, kube-controller-manager, etcd, helm), built
# from pinned Go modules once per version into .cache/controlplane/; says so and exits 0 when Go
# is missing (tests/realplane then skip with the reason).
controlplane:
	bash tools/controlplane/build.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
