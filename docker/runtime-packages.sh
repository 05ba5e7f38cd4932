#!/usr/bin/env bash
# Print the Debian packages that hold the shared libraries a Caffe install links (its caffe tool,
# libcaffe and pycaffe's _caffe.so), so the runtime image installs just those. Libraries under
# /opt (the CUDA wheels of the GPU image) are copied with the install instead.
# usage: docker/runtime-packages.sh CAFFE_PREFIX
set -euo pipefail
prefix=$1
ldd "$prefix"/bin/caffe "$prefix"/lib/lib*.so* "$prefix"/lib/python3/dist-packages/caffe/_caffe.so \
    | awk '$2 == "=>" && $3 ~ /^\// && $3 !~ /^\/opt\// && index($3, p) != 1 {print $3}' p="$(readlink -f "$prefix")/" | sort -u \
    | while read -r lib; do
        # merged /usr: dpkg may have recorded the file under /usr/lib or /lib, or its link target
        for p in "$lib" "/usr$lib" "$(readlink -f "$lib")"; do
            pkg=$(dpkg -S "$p" 2>/dev/null | head -n1 | cut -d: -f1) && [ -n "$pkg" ] && break
        done
        [ -n "$pkg" ] || { echo "error: no Debian package holds $lib" >&2; exit 1; }
        echo "$pkg"
    done | sort -u
