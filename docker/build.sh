#!/usr/bin/env bash
# Build the toolkit's Docker image with the local Docker engine: CPU (default) or GPU (--gpu).
#
# usage: docker/build.sh [--gpu] [--tag NAME] [--cuda-archs LIST] [--base IMAGE] [--caffe-from PREFIX]
#                       [--no-prebuilt] [--engine-only] [-h]
#   --gpu              the CUDA 13 image (tools/setup.sh --cuda inside; runs with `docker run --gpus`)
#   --tag NAME         image name (default srcaffe:cpu, or srcaffe:gpu with --gpu)
#   --cuda-archs LIST  GPU archs for --gpu, as SRCAFFE_CUDA_ARCHS of tools/cuda_toolchain.sh
#                      (default: its family, sm_75 and up + PTX; "90;90" builds for Hopper only)
#   --base IMAGE       the Debian 12 base (default debian:bookworm, pulled when missing; where no
#                      registry answers, srcaffe/debian:bookworm is made from this machine's Debian
#                      mirror with mmdebstrap)
#   --caffe-from PREFIX  this machine's Caffe install to put into the image instead of compiling it
#                      there (a folder caffe-1.0.0-*/ of tools/setup.sh's cache, with its .complete);
#                      default: the build of the variant that the venv recorded ($VENV/.srcaffe-cpu
#                      or .srcaffe-cuda, tools/setup.sh --status), on a Debian 12 host. The image
#                      uses it only when its own recipe key is the same (same folder name), and
#                      compiles otherwise; the build log's "prebuilt:" lines say which
#   --no-prebuilt      compile Caffe inside the image, as a plain `docker build` does
#   --engine-only      only make sure a Docker engine answers (start dockerd, install docker.io)
#
# The build context is what a fresh clone has: the files git tracks plus untracked files it does
# not ignore (never datasets/, runs/, data/ or a venv). The host's CA certificates
# (/usr/local/share/ca-certificates/*.crt) go into the image for networks that intercept TLS.
# With no engine answering, dockerd is started in the background (log: $SRCAFFE_CACHE/dockerd.log),
# installing Debian's docker.io first where it is missing (root or sudo).
# env: SRCAFFE_CACHE (default ~/.cache/srcaffe), VENV (default: the active venv, else .venv/)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"
CACHE=$SRCAFFE_CACHE_DIR SAY_AS=docker
VARIANT=cpu TAG= ARCHS= BASE= ENGINE_ONLY=0 FROM= PREBUILT=1
MADE_BASE=srcaffe/debian:bookworm

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {  # Debian packages, with fresh package lists (a new machine may have none)
    command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
    say "installing $* (log: $CACHE/apt-docker.log)"
    { as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; } \
        >>"$CACHE/apt-docker.log" 2>&1 || die "apt-get install $* failed (see $CACHE/apt-docker.log)"
}

while [ $# -gt 0 ]; do
    case $1 in
        --gpu) VARIANT=cuda; shift ;;
        --tag|--cuda-archs|--base|--caffe-from) [ $# -ge 2 ] || die "$1 needs a value (see docker/build.sh --help)"
            case $1 in --tag) TAG=$2 ;; --cuda-archs) ARCHS=$2 ;; --base) BASE=$2 ;; --caffe-from) FROM=$2 ;; esac; shift 2 ;;
        --no-prebuilt) PREBUILT=0; shift ;;
        --engine-only) ENGINE_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see docker/build.sh --help)" ;;
    esac
done
TAG=${TAG:-srcaffe:$([ "$VARIANT" = cuda ] && echo gpu || echo cpu)}
[ "$PREBUILT" = 0 ] && [ -n "$FROM" ] && die "--caffe-from and --no-prebuilt exclude each other"
if [ -n "$FROM" ]; then
    [ -f "$FROM/.complete" ] && [ -x "$FROM/bin/caffe" ] \
        || die "--caffe-from $FROM: not a finished Caffe install of tools/setup.sh (no .complete or bin/caffe)"
    case $(basename "$(readlink -f "$FROM")") in
        caffe-1.0.0-*-cuda-*) [ "$VARIANT" = cuda ] || die "--caffe-from $FROM: a CUDA build, for --gpu only" ;;
        caffe-1.0.0-*) [ "$VARIANT" = cpu ] || die "--caffe-from $FROM: a CPU build, not for --gpu" ;;
        *) die "--caffe-from $FROM: not a folder of tools/setup.sh's cache (caffe-1.0.0-<blas>-[cuda-]<key>)" ;;
    esac
    FROM=$(readlink -f "$FROM")
elif [ "$PREBUILT" = 1 ] && grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    # The venv's record of its build of this variant (tools/setup.sh writes it).
    VENV=$SRCAFFE_VENV
    rec=$(sed -n 's/^prefix=//p' "$VENV/.srcaffe-$VARIANT" 2>/dev/null || true)
    [ -n "$rec" ] && [ -f "$rec/.complete" ] && [ -x "$rec/bin/caffe" ] && FROM=$(readlink -f "$rec")
fi
mkdir -p "$CACHE"
git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1 \
    || die "$REPO is not a git clone: build with 'docker build -f docker/Dockerfile .' (.dockerignore trims the context)"
# One build.sh at a time starts dockerd or makes the base image; builds themselves may overlap.
exec 7>"$CACHE/.lock-docker"
flock -w 1800 7 || die "another docker/build.sh held $CACHE/.lock-docker for 30 min"

# ---- engine ------------------------------------------------------------------------------------
engine_up() { timeout 20 docker info >/dev/null 2>&1; }
if ! command -v docker >/dev/null || ! engine_up; then
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        apt_install docker.io   # Debian's Docker engine and client
    fi
    say "starting dockerd (log: $CACHE/dockerd.log)"
    # 7>&-: dockerd outlives this script and must not hold its lock (the next build would wait forever).
    as_root setsid dockerd >>"$CACHE/dockerd.log" 2>&1 </dev/null 7>&- &
    for _ in $(seq 60); do engine_up && break; sleep 1; done
    engine_up || { tail -n 5 "$CACHE/dockerd.log" >&2; die "dockerd did not answer within 60 s (see $CACHE/dockerd.log)"; }
fi
say "engine: Docker $(docker version -f '{{.Server.Version}}' 2>/dev/null)"
[ "$ENGINE_ONLY" = 1 ] && exit 0

# ---- base image ---------------------------------------------------------------------------------
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
make_base() {  # a Debian 12 root filesystem from this machine's apt sources, imported as $MADE_BASE
    local mirrors=() f
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    # A Debian 12 host's own sources (its mirror, updates, security); elsewhere mmdebstrap's default.
    if grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
            [ -s "$f" ] && grep -qE '^[^#]*://[^[:space:]]+/debian(-security)?/?([[:space:]]|$)' "$f" && mirrors+=("$f")
        done
    fi
    say "no registry gave debian:bookworm: making $MADE_BASE with mmdebstrap from ${mirrors[*]:-deb.debian.org} (~2 min; log: $CACHE/mmdebstrap.log)"
    as_root mmdebstrap --variant=minbase --format=tar --include=ca-certificates bookworm "$CACHE/bookworm-rootfs.part.tar" \
        "${mirrors[@]}" >"$CACHE/mmdebstrap.log" 2>&1 || die "mmdebstrap failed (see $CACHE/mmdebstrap.log)"
    docker import -c 'CMD ["bash"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$CACHE/bookworm-rootfs.part.tar" "$MADE_BASE" >/dev/null || die "docker import of the Debian root filesystem failed"
    rm -f "$CACHE/bookworm-rootfs.part.tar"
}
if [ -z "$BASE" ]; then
    BASE=debian:bookworm
    if ! have_image "$BASE" && ! timeout 60 docker pull -q "$BASE" >/dev/null 2>&1; then
        BASE=$MADE_BASE
        have_image "$BASE" || make_base
    fi
else
    have_image "$BASE" || timeout 300 docker pull -q "$BASE" >/dev/null || die "base image $BASE: not here and not pullable"
fi
say "base: $BASE ($(docker image inspect -f '{{.Id}}' "$BASE" | cut -c8-19))"
exec 7>&-

# ---- context and build --------------------------------------------------------------------------
CTX=$(mktemp -d)
trap 'rm -rf "$CTX"' EXIT
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"; done) >"$CTX/files"   # deleted-but-tracked files are skipped
mkdir -p "$CTX/ca/docker/ca-certificates"
n_ca=0
for f in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$f" ] && cp "$f" "$CTX/ca/docker/ca-certificates/host-$(basename "$f")" && n_ca=$((n_ca + 1))
done
tar -C "$REPO" --null -T "$CTX/files" -cf "$CTX/context.tar"
tar -C "$CTX/ca" -rf "$CTX/context.tar" docker/ca-certificates
if [ -n "$FROM" ]; then
    # prebuilt/: the install, the Debian packages of the libraries it links (so the build stage
    # has them to run it) and the cache folder it was built in (its run paths name it).
    mkdir -p "$CTX/pb/prebuilt"
    bash "$REPO/docker/runtime-packages.sh" "$FROM" >"$CTX/pb/prebuilt/packages.txt" \
        || die "--caffe-from $FROM: its libraries are not all Debian packages here (docker/runtime-packages.sh)"
    dirname "$FROM" >"$CTX/pb/prebuilt/origin"
    tar -C "$CTX/pb" -rf "$CTX/context.tar" prebuilt
    tar -C "$(dirname "$FROM")" --transform 's,^,prebuilt/,S' -rf "$CTX/context.tar" "$(basename "$FROM")"
    say "prebuilt: $FROM ($(du -sm "$FROM" | cut -f1) MB; the image takes it when its recipe key is the same)"
else
    say "prebuilt: none$([ "$PREBUILT" = 0 ] && echo ' (--no-prebuilt)'): Caffe compiles inside the image"
fi
args=(--build-arg "BASE=$BASE" --build-arg "VARIANT=$VARIANT")
[ -n "$ARCHS" ] && args+=(--build-arg "SRCAFFE_CUDA_ARCHS=$ARCHS")
# The Docker CLI needs its buildx plugin for BuildKit; without it, the classic builder does the job.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0
say "building $TAG ($VARIANT, $(tr -cd '\0' <"$CTX/files" | wc -c) files, $n_ca host CA certificate(s)); log: $CACHE/docker-build-$VARIANT.log"
if ! docker build -f docker/Dockerfile -t "$TAG" "${args[@]}" - <"$CTX/context.tar" >"$CACHE/docker-build-$VARIANT.log" 2>&1; then
    tail -n 25 "$CACHE/docker-build-$VARIANT.log" >&2
    die "docker build failed; the whole log is $CACHE/docker-build-$VARIANT.log"
fi
grep '^prebuilt: ' "$CACHE/docker-build-$VARIANT.log" | sed 's/^/  image: /' || true
say "built $TAG: $(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
