# hivit_mm: the two commands a newcomer needs (README.md, "Quick start").
#
#   make test   create or reuse .venv (pinned stack, see requirements/), then run the test suite
#   make demo   create or reuse .venv, then run the demo (Fashion-MNIST and the shapes world)
#   make lint   create or reuse .venv, then flake8 and isort (setup.cfg); CI runs it first
#
# Both work on a fresh machine: tools/misc/setup_env.sh installs everything it needs and
# reuses the environment while requirements/ is unchanged.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
WORK_DIR ?= work_dirs/demo
PYTEST_ARGS ?=
DEMO_ARGS ?=
export HIVIT_MM_VENV := $(VENV)
export OMP_NUM_THREADS ?= 2

.PHONY: env test demo lint

env:
	@bash tools/misc/setup_env.sh

test: env
	@$(PY) -m pytest tests -ra $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; that is a failure" >&2; fi; \
	exit $$rc

demo: env
	@$(PY) tools/demo.py --work-dir $(WORK_DIR) $(DEMO_ARGS)

lint: env
	@$(PY) -m flake8 . && $(PY) -m isort --check-only --diff . && echo "make lint: clean"
