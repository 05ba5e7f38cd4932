# Sourced by the toolkit's shell scripts (not run): one definition of their messages and defaults.
#   die MSG      one line "error: MSG" on stderr, exit 2
#   say MSG      a progress line "[NAME   Ns] MSG" (NAME: $SAY_AS, else the script's name)
#   usage        the script's header comment: its lines 2 to `set -euo pipefail`
#   SRCAFFE_REPO the repository; SRCAFFE_VENV the venv as tools/setup.sh chooses it ($VENV, the
#                active venv, else <repo>/.venv); SRCAFFE_CACHE_DIR the build cache ($SRCAFFE_CACHE,
#                else $XDG_CACHE_HOME/srcaffe, else ~/.cache/srcaffe), as srcaffe/paths.py has them
SRCAFFE_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRCAFFE_VENV=${VENV:-${VIRTUAL_ENV:-$SRCAFFE_REPO/.venv}}
SRCAFFE_CACHE_DIR=${SRCAFFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/srcaffe}
die() { echo "error: $*" >&2; exit 2; }
say() { printf '[%s %4ss] %s\n' "${SAY_AS:-$(basename "$0" .sh)}" "$SECONDS" "$*"; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
