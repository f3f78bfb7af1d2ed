#!/usr/bin/env bash
# Build llama.cpp's llama-server (for the team-mode tests and for users who want a local box) from the
# llama.cpp sources vendored in the llama-cpp-python sdist the Makefile pins, so the server computes
# what the local backend computes: same llama.cpp, built without llamafile's GEMM, no curl.
# Idempotent and quick when cached: the binary lives in steercode's cache directory
# ($STEERCODE_CACHE_DIR, else $XDG_CACHE_HOME/steercode) as llama-server/<version>/bin/llama-server,
# installed atomically (built elsewhere, renamed into place) under a lock. Never committed.
# The sdist comes from PyPI through pip (its HTTP cache makes a rebuild offline-friendly).
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
CACHE="${STEERCODE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/steercode}"
DEST="$CACHE/llama-server/$VERSION"
BIN="$DEST/bin/llama-server"
JOBS="${JOBS:-2}"

ready() { [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; }

if ready; then
  echo "[llama-server-setup] ready: $BIN"
  exit 0
fi
mkdir -p "$CACHE/llama-server"
exec 9>"$CACHE/llama-server/.build.lock"
flock 9
if ready; then
  echo "[llama-server-setup] ready: $BIN"
  exit 0
fi

for tool in cmake c++; do
  command -v "$tool" >/dev/null 2>&1 || { echo "[llama-server-setup] needs $tool (apt-get install cmake g++)" >&2; exit 1; }
done

WORK="$(mktemp -d "$CACHE/llama-server/.build-$VERSION.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
echo "[llama-server-setup] fetching the llama-cpp-python $VERSION sdist"
"$PY" -m pip download --quiet --no-binary :all: --no-deps --dest "$WORK" "llama-cpp-python==$VERSION"
tar xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
[ -f "$SRC/tools/server/CMakeLists.txt" ] || { echo "[llama-server-setup] no tools/server in $SRC" >&2; exit 1; }

echo "[llama-server-setup] building llama-server (one-time, several minutes on 2 cores)"
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
cmake -S "$SRC" -B "$WORK/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_LLAMAFILE=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
  >"$WORK/configure.log" 2>&1 || { tail -30 "$WORK/configure.log" >&2; exit 1; }
cmake --build "$WORK/build" --config Release --target llama-server -j "$JOBS" \
  >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; exit 1; }

STAGE="$CACHE/llama-server/.stage-$VERSION.$$"
rm -rf "$STAGE"
mkdir -p "$STAGE/bin"
cp "$WORK/build/bin/llama-server" "$STAGE/bin/llama-server"
"$STAGE/bin/llama-server" --version >"$STAGE/version.txt" 2>&1
echo "llama-cpp-python $VERSION; -DGGML_LLAMAFILE=OFF -DLLAMA_CURL=OFF" >"$STAGE/build-info.txt"
rm -rf "$DEST"
mv "$STAGE" "$DEST"
echo "[llama-server-setup] ready: $BIN"
