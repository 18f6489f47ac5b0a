# The two commands of the README. Both build .venv first if it is missing.
SHELL := /bin/bash
PY := .venv/bin/python
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2

.PHONY: env demo test lint bench clean-env

env:
	bash scripts/setup_env.sh

demo: env
	bash scripts/demo.sh

# two pytest workers, one thread each (fairseq tools started by the tests are single-threaded too)
test: env
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile tests

# pyflakes errors, import order, unused names (ruff, pinned in requirements.txt; rules in ruff.toml);
# the shell scripts with shellcheck (pinned too; settings in .shellcheckrc)
lint: env
	$(PY) -m ruff check fairseq_layerdrop scripts benchmarks tests
	.venv/bin/shellcheck -S warning scripts/*.sh benchmarks/*.sh .ci/run

bench: env
	bash benchmarks/run_all.sh

clean-env:
	rm -rf .venv
