#!/usr/bin/env bash
# In the image's build stage, before tools/setup.sh: take the Caffe install docker/build.sh copied
# from the host's cache (/opt/srcaffe/prebuilt/: caffe-1.0.0-*/ with its .complete, packages.txt
# with the Debian libraries it links, origin with the cache folder it was built in), so that
# setup.sh finds it under its own name in $SRCAFFE_CACHE ("reusing cached build") when the image's
# recipe key is the same, and compiles nothing. Caffe's CMake (cmake/Misc.cmake) installs with
# absolute run paths, so each of its files gets them rewritten (patchelf): a folder in the host's
# cache becomes the same folder of the image's cache relative to $ORIGIN, a folder the image does
# not have (a pyenv lib/) is dropped. With nothing copied (a plain `docker build`) it does nothing.
# usage: docker/prebuilt.sh take | check
#   take   install the libraries it links and patchelf, relocate it, move it into $SRCAFFE_CACHE
#   check  after setup.sh: say whether the venv links the prebuilt install; one of another recipe
#          key (not used, Caffe was compiled) is removed
set -euo pipefail
IN=/opt/srcaffe/prebuilt
CACHE=${SRCAFFE_CACHE:?}
VENV=${VENV:?}

case ${1:-} in
take)
    names=$(cd "$IN" && ls -d caffe-*/ 2>/dev/null | tr -d /) || true
    if [ -z "$names" ]; then
        echo "prebuilt: none (Caffe compiles in this stage)"
        rm -rf "$IN"; exit 0
    fi
    origin=$(cat "$IN/origin")
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends patchelf $(cat "$IN/packages.txt") >/dev/null
    rm -rf /var/lib/apt/lists/*
    mkdir -p "$CACHE"
    for name in $names; do
        b=$IN/$name
        [ -f "$b/.complete" ] || { echo "error: prebuilt $name has no .complete: not a finished build" >&2; exit 1; }
        find "$b" -type f \( -path "$b/bin/*" -o -name '*.so' -o -name '*.so.*' \) | while read -r f; do
            head -c 4 "$f" | grep -q ELF || continue
            old=$(patchelf --print-rpath "$f")
            new=$(python3 - "$old" "$f" "$origin" "$CACHE" "$b" <<'EOF'
import os, sys
old, f, origin, cache, here = sys.argv[1:]
final = os.path.join(cache, os.path.relpath(os.path.dirname(f), os.path.dirname(here)))  # f's folder once moved
out = []
for e in filter(None, old.split(":")):
    if e == origin or e.startswith(origin + "/"):
        target = os.path.join(cache, os.path.relpath(e, origin))
        e = "$ORIGIN" if target == final else "$ORIGIN/" + os.path.relpath(target, final)
    elif not e.startswith("$ORIGIN") and not os.path.isdir(e):
        continue
    if e not in out:
        out.append(e)
print(":".join(out))
EOF
)
            patchelf --set-rpath "$new" "$f"
            echo "  ${f#"$b"/}: $old -> $new"
        done
        rm -rf "${CACHE:?}/$name"
        mv "$b" "$CACHE/$name"
        echo "prebuilt: $name, built in $origin, now $CACHE/$name"
    done
    echo "$names" >"$IN/names" ;;
check)
    [ -f "$IN/names" ] || exit 0
    linked=$(basename "$(dirname "$(dirname "$(readlink -f "$VENV/bin/caffe")")")")
    for name in $(cat "$IN/names"); do
        if [ "$name" = "$linked" ]; then
            echo "prebuilt: reused $name (recipe key $(sed -n 's/^key=//p' "$VENV/.srcaffe-caffe")): nothing compiled"
        else
            echo "prebuilt: $name is not this image's recipe key ($linked was set up): removed"
            rm -rf "${CACHE:?}/$name"
        fi
    done
    rm -rf "$IN" ;;
*) echo "error: docker/prebuilt.sh: give 'take' or 'check'" >&2; exit 2 ;;
esac
