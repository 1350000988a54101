# nga4m.platform — developer and CI entry points.
#   make demo   the main job on the embedded default (local stand-ins)
#   make test   the whole suite (lint, sanity, unit, integration, molecule)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV ?= $(ROOT)/.venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.nga4m-requirements-test.stamp
COLLECTIONS := $(ROOT)/.cache/collections
# The pinned kubectl, helm, kube-apiserver... (tools/gobuild; built by `make system`) come first.
GOBIN_DIR := $(shell tools/gobuild --dir 2>/dev/null | head -n1)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_PYTHON_INTERPRETER := $(PY)
export PATH := $(GOBIN_DIR):$(BIN):$(PATH)
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: help system venv tree lint yamllint ansible-lint argspecs sanity unit integration molecule collection test demo demo-stop bench build clean

help:
	@echo "make demo       run the platform flow on local stand-ins (embedded default)"
	@echo "make test       the whole suite: lint sanity unit integration molecule collection"
	@echo "make bench      benchmarks (print ratios)"
	@echo "make build      build the collection tarball"

# System packages (prometheus, mariadb-server, rsync, python3-venv) when missing; the bed's binaries.
system:
	@tools/bootstrap

$(STAMP): requirements.txt requirements-test.txt | system
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	@touch $@

venv: $(STAMP)

tree: $(STAMP)
	@tools/collection-tree >/dev/null

yamllint: tree
	$(BIN)/yamllint --strict .

ansible-lint: tree
	$(BIN)/ansible-lint --offline --profile production

argspecs: tree
	$(PY) tools/check-argspecs

lint: yamllint ansible-lint argspecs

sanity: tree
	@tools/seed-ansible-test-cache >/dev/null
	@dir=$$(tools/collection-tree --copy) && cd $$dir && \
	  $(BIN)/ansible-test sanity --venv --python 3.11 --color no
	@for f in tests/sanity/ignore-*.txt; do test ! -s $$f || { echo "$$f must stay empty"; exit 1; }; done

unit: tree
	$(PYTEST) tests/unit -q

integration: tree
	$(PYTEST) -n 2 --dist loadfile tests/integration -q

molecule: tree
	$(BIN)/molecule test -s kwok

collection: tree
	$(PYTEST) tests/collection -q

test: lint sanity unit integration molecule collection

# Contract check of what the roles produce against the upstream releases they pin (not part of
# `make test`; docs/testing.md). NGA4M_UPSTREAM_DIR: a directory holding the git repositories
# kubeflow-manifests, kserve and helm-charts (else blob-less clones in ~/.cache/nga4m/upstream,
# network). Options: UPSTREAM_CHECK_ARGS="--skip helm-charts --kubeflow-extra-ref release-26.03".
.PHONY: upstream-check
upstream-check: tree
	$(PY) tools/upstream-check $(UPSTREAM_CHECK_ARGS)

build: tree
	$(BIN)/ansible-galaxy collection build --force --output-path $(ROOT)/.cache/dist

demo: tree
	$(PY) tools/demo.py

demo-stop:
	-$(PY) tools/demo.py --stop

bench: tree
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf .cache tests/output .pytest_cache .demo
