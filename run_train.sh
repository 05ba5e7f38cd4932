#!/usr/bin/env bash
# Train FSRCNN / SRCNN with real Caffe: ./run_train.sh MODEL [options]; --help lists them.
# Sets up the venv and Caffe on first use (tools/setup.sh), then runs tools/train.py with the
# venv's interpreter and the same arguments; --help prints at once, without setting anything up.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for a in "$@"; do case $a in -h|--help) exec python3 "$REPO/tools/train.py" "$@" ;; esac; done
bash "$REPO/tools/setup.sh" >&2
VENV=${VENV:-${VIRTUAL_ENV:-$REPO/.venv}}
exec "$VENV/bin/python" "$REPO/tools/train.py" "$@"
