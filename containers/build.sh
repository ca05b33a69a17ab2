#!/usr/bin/env bash
# Build the DaniNet image with podman, offline-capable, and print each step's wall time.
#
#   containers/build.sh                 # -> localhost/daninet:<version> and :latest
#   IMAGE=localhost/daninet:dev BASE=debian:bookworm-slim containers/build.sh
#
# Steps: (1) base image: BASE when given; otherwise localhost/debian:bookworm-local, made
# with debootstrap (minbase) and `podman import` when it is not there yet (no registry
# needed, only Debian's archive); (2) wheelhouse (containers/make-wheelhouse.sh);
# (3) `podman build --isolation chroot --network host` of containers/Dockerfile with the
# repository root as context. Needs root. Installs podman and debootstrap with apt-get
# when they are missing. Timings go to containers/_build/timings.tsv as well.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/daninet_pipeline/__init__.py")"
IMAGE="${IMAGE:-localhost/daninet:$version}"
LOCAL_BASE="localhost/debian:bookworm-local"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
builddir="$here/_build"
mkdir -p "$builddir"
timings="$builddir/timings.tsv"
[ -f "$timings" ] || printf 'date\tstep\tseconds\tnote\n' > "$timings"

step() {  # step NAME NOTE COMMAND...: run, time, record
  local name="$1" note="$2"; shift 2
  local t0=$SECONDS
  echo "[build] $name: $note"
  "$@"
  local dt=$((SECONDS - t0))
  echo "[build] $name: done in ${dt} s"
  printf '%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$name" "$dt" "$note (load $(cut -d' ' -f1-3 /proc/loadavg))" >> "$timings"
}

retry() {  # retry N COMMAND...: network steps get N tries, 20 s apart
  local n="$1" i; shift
  for ((i = 1; i <= n; i++)); do
    "$@" && return 0
    [ "$i" -lt "$n" ] && { echo "[build] try $i of $n failed: $*; again in 20 s" >&2; sleep 20; }
  done
  return 1
}

need=()
command -v podman >/dev/null || need+=(podman)
if [ -z "${BASE:-}" ] && ! command -v debootstrap >/dev/null; then need+=(debootstrap); fi
if [ ${#need[@]} -gt 0 ]; then
  step host-tools "apt-get install ${need[*]}" retry 3 \
    bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${need[*]} >/dev/null"
fi

make_base() {
  local rootfs rc=0
  rootfs="$(mktemp -d /var/tmp/daninet-rootfs.XXXXXX)"
  # shellcheck disable=SC2329  # called through retry
  debootstrap_once() {
    rm -rf "$rootfs/root"
    debootstrap --variant=minbase bookworm "$rootfs/root" "$DEBIAN_MIRROR" > "$builddir/debootstrap.log" 2>&1 \
      || { tail -20 "$builddir/debootstrap.log" >&2; return 1; }
  }
  retry 3 debootstrap_once || rc=1
  if [ "$rc" = 0 ]; then
    rm -rf "$rootfs/root/var/cache/apt/archives/"*.deb "$rootfs/root/var/lib/apt/lists/"*
    tar -C "$rootfs/root" -c . | podman import --quiet - "$LOCAL_BASE" >/dev/null || rc=1
  fi
  rm -rf "$rootfs"
  return "$rc"
}

if [ -n "${BASE:-}" ]; then
  base="$BASE"
  echo "[build] base image: $base (given)"
elif [ "${REBUILD_BASE:-0}" != 1 ] && podman image exists "$LOCAL_BASE"; then
  base="$LOCAL_BASE"
  echo "[build] base image: $base (already there; REBUILD_BASE=1 remakes it)"
else
  base="$LOCAL_BASE"
  step base-image "debootstrap --variant=minbase bookworm + podman import -> $base" make_base
fi

step wheelhouse "pip wheel torch (CPU) and all dependencies into containers/wheelhouse" \
  retry 2 "$here/make-wheelhouse.sh"

source_hash="$(cd "$repo" && { find daninet_pipeline setup.cfg pyproject.toml README.md -type f \
  -not -path '*__pycache__*' -not -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum;
  ls containers/wheelhouse; } | sha256sum | cut -c1-16)"
build_image() {
  podman build --format docker --isolation chroot --network host \
    --ignorefile "$here/Dockerfile.dockerignore" -f "$here/Dockerfile" "$@" \
    > "$builddir/image-build.log" 2>&1 || { tail -40 "$builddir/image-build.log" >&2; return 1; }
}
vcs_ref="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
source_url="$(git -C "$repo" remote get-url origin 2>/dev/null || echo unknown)"
step image-build "podman build -> $IMAGE" \
  build_image --build-arg SOURCE_HASH="$source_hash" \
    --build-arg BASE="$base" --build-arg VERSION="$version" --build-arg VCS_REF="$vcs_ref" \
    --build-arg BUILD_DATE="$(date -u +%FT%TZ)" --build-arg SOURCE_URL="$source_url" \
    --tag "$IMAGE" --tag localhost/daninet:latest "$repo"
# Dangling layers of earlier builds of the same tag.
podman image prune --force >/dev/null 2>&1 || true
echo "[build] $IMAGE: $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1/1e9}')"
