#!/usr/bin/env bash
# Build the project's Python 3.11 virtual environment in .venv (idempotent).
#
# Why this order: torch is pinned and installed first from the CPU wheel, so no
# resolver ever picks a (multi-GB CUDA) torch; fairseq comes from the
# Python-3.11-compatible `fairseq-fixed` build, compiled without build isolation
# and without dependencies (its metadata would pull torchaudio and an old
# hydra); its text-only runtime deps are then installed explicitly.
#
# GPU users: set TORCH_SPEC, e.g.  TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>"
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
STAMP="$VENV/.fairseq_layerdrop_env_v1"

if [[ -f "$STAMP" ]]; then
  exit 0
fi
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'

echo "[setup] creating $VENV" >&2
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" --upgrade "pip<26"
# shellcheck disable=SC2086
"${PIP[@]}" $TORCH_SPEC
"${PIP[@]}" setuptools wheel cython "numpy<2"
echo "[setup] building fairseq-fixed (a few minutes the first time; cached afterwards)" >&2
MAX_JOBS=2 "${PIP[@]}" --no-build-isolation --no-deps fairseq-fixed==0.12.3.1
"${PIP[@]}" -r requirements.txt
"${PIP[@]}" --no-deps -e .
"$VENV/bin/python" -c "import torch, fairseq, fairseq_layerdrop; print('[setup] torch', torch.__version__, 'fairseq', fairseq.__version__)" >&2
touch "$STAMP"
