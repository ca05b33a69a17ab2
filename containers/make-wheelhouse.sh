#!/usr/bin/env bash
# Fill containers/wheelhouse/ with wheels of torch (CPU) and of every dependency of the
# package, so that `podman build`/`docker build` installs with no network (pip inside a
# build cannot reach the package index in sandboxes like this project's CI).
#
#   containers/make-wheelhouse.sh            # uses .venv/bin/python when it exists
#   PYTHON=python3.11 TORCH_VERSION=2.13.0 containers/make-wheelhouse.sh
#
# The wheels must match the image's Python (Debian bookworm: CPython 3.11, x86_64,
# glibc 2.36), so run this with a Python 3.11 on x86_64 Linux. When the .venv exists, its
# `pip freeze` constrains the versions: the image gets what the test suite ran with.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
wheelhouse="${WHEELHOUSE:-$here/wheelhouse}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "the image has Python 3.11: run with a Python 3.11"'

mkdir -p "$wheelhouse"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$PYTHON" -m pip freeze --exclude-editable 2>/dev/null | grep -viE '^(daninet[-_]pipeline)([=@ ]|$)' > "$constraints" || true

# torch==X matches the local CPU build X+cpu where pip's find-links/index offer it; pass
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu elsewhere.
log="$here/_build/wheelhouse.log"
mkdir -p "$(dirname "$log")"
"$PYTHON" -m pip wheel --wheel-dir "$wheelhouse" --constraint "$constraints" \
  "torch==${TORCH_VERSION}" "$repo" pip setuptools wheel > "$log" 2>&1 \
  || { tail -40 "$log" >&2; echo "[wheelhouse] pip wheel failed; log in $log" >&2; exit 1; }
# The package itself is installed from the source tree, never from an old wheel.
rm -f "$wheelhouse"/daninet_pipeline-*.whl
n=$(find "$wheelhouse" -name '*.whl' | wc -l)
echo "[wheelhouse] $n wheels, $(du -sh "$wheelhouse" | cut -f1) in $wheelhouse"
