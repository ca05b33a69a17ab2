#!/usr/bin/env bash
# Run the built image on this machine and check what it writes (the container test).
#
#   containers/test.sh [IMAGE]          # default localhost/daninet:latest
#
# Steps, each timed: `daninet --version` (must equal the package version); the image's
# user is not root; `daninet-demo-data` makes a small synthetic BIDS dataset into a
# host folder mounted at /data; `daninet /data /out participant` (as a BIDS App: /data
# read-only) and workflows/check_derivatives.py, run inside the image, checks /out; the
# participant level again as Apptainer would run it (read-only image, another uid).
# While the package has no participant level yet the last step is reported as SKIPPED
# (REQUIRE_PARTICIPANT=1 makes that a failure). Uses containers/run-in-image.sh, so it
# needs root and podman but no `podman run`. Every temporary folder and container is
# removed at exit. Env: TEST_SUBJECTS (default 1), TEST_SEED (default 0), KEEP_TMP=1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
IMAGE="${1:-localhost/daninet:latest}"
TEST_SUBJECTS="${TEST_SUBJECTS:-1}"
TEST_SEED="${TEST_SEED:-0}"   # seed 0: one subject with two sessions
run="$here/run-in-image.sh"
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/daninet_pipeline/__init__.py")"
builddir="$here/_build"; mkdir -p "$builddir"
timings="$builddir/timings.tsv"
[ -f "$timings" ] || printf 'date\tstep\tseconds\tnote\n' > "$timings"

tmp="$(mktemp -d /var/tmp/daninet-container-test.XXXXXX)"
# shellcheck disable=SC2329  # invoked by the trap below
cleanup() { if [ "${KEEP_TMP:-0}" = 1 ]; then echo "[test] kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT
mkdir -p "$tmp/data" "$tmp/out" "$tmp/out-ro" "$tmp/home"
chmod 0777 "$tmp/data" "$tmp/out" "$tmp/out-ro" "$tmp/home"   # the image's users write there

t_step=0
begin() { t_step=$SECONDS; echo "[test] $1"; }
end() {
  local dt=$((SECONDS - t_step))
  echo "[test] $1: ${2:-ok} in ${dt} s"
  printf '%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$1" "$dt" "${2:-ok} (load $(cut -d' ' -f1-3 /proc/loadavg))" >> "$timings"
}

podman image exists "$IMAGE" || { echo "[test] no image $IMAGE: run containers/build.sh first" >&2; exit 1; }

begin "run: daninet --version"
got="$("$run" "$IMAGE" --version)"
[ "$got" = "daninet $version" ] || { echo "[test] expected 'daninet $version', got '$got'" >&2; exit 1; }
end run-version "$got"

begin "run: the image's user"
uid="$("$run" --entrypoint id "$IMAGE" -u)"
[ "$uid" != 0 ] || { echo "[test] the image runs as root" >&2; exit 1; }
end run-user "uid $uid"

begin "run: daninet-demo-data /data/bids --subjects $TEST_SUBJECTS --seed $TEST_SEED --shape small"
"$run" -v "$tmp/data:/data" --entrypoint daninet-demo-data "$IMAGE" \
  /data/bids --subjects "$TEST_SUBJECTS" --seed "$TEST_SEED" --shape small > "$tmp/demo.log" 2>&1 \
  || { cat "$tmp/demo.log" >&2; exit 1; }
n_t1w=$(find "$tmp/data/bids" -path '*/derivatives' -prune -o -name '*_T1w.nii.gz' -print | wc -l)
[ "$n_t1w" -gt 0 ] || { echo "[test] the demo dataset has no T1w image" >&2; exit 1; }
end run-demo-data "$TEST_SUBJECTS subjects, $n_t1w T1w images"

begin "run: daninet /data /out participant"
set +e
"$run" -v "$tmp/data/bids:/data:ro" -v "$tmp/out:/out" "$IMAGE" \
  /data /out/daninet participant --work-dir /out/work --nprocs 2 --omp-nthreads 1 \
  > "$tmp/participant.log" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ] && grep -q "participant level is not available in this version" "$tmp/participant.log"; then
  tail -3 "$tmp/participant.log"
  end run-participant "SKIPPED (this version has no participant level)"
  if [ "${REQUIRE_PARTICIPANT:-0}" = 1 ]; then exit 1; fi
  echo "[test] container test passed (participant level skipped)"
  exit 0
fi
if [ $rc -ne 0 ]; then
  tail -40 "$tmp/participant.log" >&2
  echo "[test] the participant level exited $rc" >&2
  exit 1
fi
end run-participant "exit 0"

begin "check: derivatives (workflows/check_derivatives.py inside the image)"
"$run" -v "$tmp/data/bids:/data:ro" -v "$tmp/out:/out:ro" -v "$repo/workflows:/recipes:ro" \
  --entrypoint python "$IMAGE" /recipes/check_derivatives.py /data /out/daninet
end check-derivatives

# As Apptainer runs it: read-only root file system, the caller's uid (not in the image's
# /etc/passwd), HOME on a bound folder, a fresh /tmp.
# One session is enough here.
session="$(find "$tmp/data/bids" -mindepth 2 -maxdepth 2 -name 'ses-*' -printf '%f\n' | sort | head -1)"
begin "run (Apptainer-like: read-only image, uid 4321, bound HOME): daninet /data /out participant --session-label $session"
"$run" --read-only -u 4321:4321 -e HOME=/home/user -v "$tmp/home:/home/user" \
  -v "$tmp/data/bids:/data:ro" -v "$tmp/out-ro:/out" "$IMAGE" \
  /data /out/daninet participant --session-label "$session" --work-dir /out/work \
  --nprocs 2 --omp-nthreads 1 --skip-bids-validation > "$tmp/participant-ro.log" 2>&1 \
  || { tail -40 "$tmp/participant-ro.log" >&2; exit 1; }
"$run" -v "$tmp/data/bids:/data:ro" -v "$tmp/out-ro:/out:ro" -v "$repo/workflows:/recipes:ro" \
  --entrypoint python "$IMAGE" /recipes/check_derivatives.py /data /out/daninet --session-label "$session"
end run-participant-readonly
echo "[test] container test passed"
