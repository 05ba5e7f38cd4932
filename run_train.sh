#!/usr/bin/env bash
# Train FSRCNN / SRCNN with real Caffe: ./run_train.sh MODEL [options]; --help lists them.
# Sets up the venv and Caffe on first use (tools/setup.sh), then runs tools/train.py with the
# venv's interpreter and the same arguments.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case ${1:-} in -h|--help) ;; *) bash "$REPO/tools/setup.sh" >&2 ;; esac
VENV=${VENV:-${VIRTUAL_ENV:-$REPO/.venv}}
[ -x "$VENV/bin/python" ] || bash "$REPO/tools/setup.sh" >&2
exec "$VENV/bin/python" "$REPO/tools/train.py" "$@"
