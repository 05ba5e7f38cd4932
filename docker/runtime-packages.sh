#!/usr/bin/env bash
# Print the Debian packages that hold the shared libraries a Caffe install links (its caffe tool,
# libcaffe and pycaffe's _caffe.so), so the runtime image installs just those. Libraries under
# /opt or in the install's cache folder (the CUDA wheels of the GPU image) travel with the install
# instead. A library outside the package manager (a pyenv interpreter's libpython, on a host)
# stands for the Debian package with a library of the same name in the system's lib folder: what
# the image loads in its place. A library that ldd does not find is an error, never left out.
# usage: docker/runtime-packages.sh CAFFE_PREFIX
set -euo pipefail
prefix=$(readlink -f "$1")
cache=$(dirname "$prefix")
out=$(ldd "$prefix"/bin/caffe "$prefix"/lib/lib*.so* "$prefix"/lib/python3/dist-packages/caffe/_caffe.so)
missing=$(awk '$2 == "=>" && $3 == "not" {print $1}' <<<"$out" | sort -u | tr '\n' ' ')
[ -z "$missing" ] || { echo "error: $prefix links libraries that are not found here: $missing" >&2; exit 1; }
libs=$(awk '$2 == "=>" && $3 ~ /^\// && $3 !~ /^\/opt\// && index($3, c) != 1 {print $3}' c="$cache/" <<<"$out" | sort -u)
[ -n "$libs" ] || exit 0
# One dpkg query for all of them (a query per library is slow): merged /usr means dpkg may have recorded
# the file under /usr/lib or /lib, or its link target.
declare -A owner
while IFS= read -r line; do
    case $line in diversion*) continue ;; esac
    pkgs=${line%%: /*} path=/${line#*: /}
    owner[$path]=${pkgs%%[:,]*}
done < <(while read -r lib; do printf '%s\n%s\n%s\n' "$lib" "/usr$lib" "$(readlink -f "$lib")"; done <<<"$libs" \
         | sort -u | xargs dpkg -S 2>/dev/null || true)
while read -r lib; do
    pkg=
    for p in "$lib" "/usr$lib" "$(readlink -f "$lib")"; do
        pkg=${owner[$p]:-} && [ -n "$pkg" ] && break
    done
    [ -n "$pkg" ] || pkg=$(dpkg -S "*/$(basename "$lib")" 2>/dev/null \
        | grep -E ": /(usr/)?lib/([^/]+/)?$(basename "$lib" | sed 's/[.+]/\\&/g')\$" | head -n1 | cut -d: -f1) || true
    [ -n "$pkg" ] || { echo "error: no Debian package holds $lib" >&2; exit 1; }
    echo "$pkg"
done <<<"$libs" | sort -u
