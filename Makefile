# Thin entry points over the project's tools. `make deploy` sets up everything and deploys
# scale=small; `make test` runs the suite on this host (what .ci/run calls). Both need root on a
# fresh machine: they install Debian packages and Docker Engine, and start dockerd.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
SCALE ?= small
VENV := .venv
BIN := $(abspath $(VENV))/bin
# Ansible, Molecule and the tests find the venv's tools (and `cqkd`) first.
export PATH := $(BIN):$(PATH)

.PHONY: setup deploy teardown lint test bench dashboards scaling scaling-local

setup:
	scripts/install-host-packages.sh
	scripts/bootstrap-venv.sh
	ansible-playbook ansible/images.yml

deploy: setup
	ansible-playbook deploy.yml -e scale=$(SCALE)

teardown:
	ansible-playbook ansible/teardown.yml

lint:
	ruff check .
	mypy node/src grafana/dashboards.py
	yamllint .
	shellcheck .ci/run scripts/*.sh images/*.sh
	ansible-lint

# One Docker host first (pytest), then Docker-in-Docker hosts: Molecule's `default`
# scenario, and the `multihost` scenario built once by the fault test on three hosts, which
# also runs the scenario's idempotence and verify steps before it breaks the hosts.
test: setup lint
	pytest --ignore=tests/multihost
	molecule test --scenario-name default
	pytest tests/multihost

# Grafana provisions the JSON files, so they are committed; a test fails when they differ
# from what grafana/dashboards.py makes.
dashboards:
	python grafana/dashboards.py

# The scaling study (15 to 500 workers): reports/scaling/<UTC time>/ (report.md, results.json,
# plots). STEPS=15,30 for a quick run.
STEPS ?= 15,50,100,200,500
scaling: setup
	ansible-playbook ansible/scaling.yml -e scaling_steps=$(STEPS)

bench: setup
	for script in bench/[!_]*.py; do echo "== $$script"; PYTHONPATH=. python "$$script"; done
	@echo "== bench/dht.py --peer stock (500 nodes beside stock kademlia 2.2.3)"
	python bench/dht.py --peer stock --sizes 500 --kill-fractions 0 --lookups 300

# The in-process scaling study (bench/scaling/in_process.py): `cqkd local` at 100 ... 10,000
# nodes, one bounded process per size; no Docker, only the venv. SIZES="100 1000" for a quick
# run, OUT=DIR to keep the committed reference report in bench/scaling/in-process/ untouched.
scaling-local:
	python -m bench.scaling.in_process $(if $(SIZES),--sizes $(SIZES)) $(if $(OUT),--out $(OUT))
