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
# the environment is rebuilt (incrementally) whenever what defines it changes
WANT=$(cat scripts/setup_env.sh requirements.txt setup.py | sha256sum | cut -c1-16)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  exit 0
fi
# one builder at a time: a second caller (e.g. two reproduce scripts) waits, then finds it done
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  exit 0
fi
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[setup] creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
# pip's noise about this machine's local index layout and about torchaudio (declared by
# fairseq, not needed for text) is filtered; real errors still show and stop the script.
pip_install() {
  local log rc=0
  log=$(mktemp)
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >"$log" 2>&1 || rc=$?
  grep -v -e "is ignored: it is neither" -e "dependency resolver does not currently" \
    -e "torchaudio" "$log" >&2 || true
  rm -f "$log"
  return "$rc"
}
PIP=(pip_install)
# shellcheck disable=SC2086
"${PIP[@]}" $TORCH_SPEC
"${PIP[@]}" setuptools wheel cython "numpy<2"
if ! "$VENV/bin/python" -c "import fairseq" 2>/dev/null; then
  echo "[setup] building fairseq-fixed (a few minutes the first time; cached afterwards)" >&2
  MAX_JOBS=2 "${PIP[@]}" --no-build-isolation --no-deps fairseq-fixed==0.12.3.1
fi
"${PIP[@]}" -r requirements.txt
"${PIP[@]}" --no-deps -e .
"$VENV/bin/python" -c "import torch, fairseq, fairseq_layerdrop; print('[setup] torch', torch.__version__, 'fairseq', fairseq.__version__)" >&2
echo "$WANT" > "$STAMP"
