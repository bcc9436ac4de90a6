#!/usr/bin/env bash
# Creates .venv/ with the Python tools that drive the kernel in tests and in `make demo`
# (jupyter_client, nbclient, jupyter-kernel-test, pytest) and JupyterLab for `make lab`.
# Idempotent: reinstalls only when requirements-test.txt changes.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
STAMP=.venv/.requirements
if [ -f "$STAMP" ] && cmp -s requirements-test.txt "$STAMP"; then
  exit 0
fi
echo "glassbox: installing the Python test tools and JupyterLab into .venv"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --disable-pip-version-check --quiet -r requirements-test.txt
cp requirements-test.txt "$STAMP"
