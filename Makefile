# The two commands of the README. Both build .venv first if it is missing.
SHELL := /bin/bash
PY := .venv/bin/python
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2

.PHONY: env demo test bench clean-env

env:
	bash scripts/setup_env.sh

demo: env
	bash scripts/demo.sh

test: env
	$(PY) -m pytest -q tests

bench: env
	bash benchmarks/run_all.sh

clean-env:
	rm -rf .venv
