#!/usr/bin/env bash
# The product command (README): installs what is missing, builds the browser bundles when their
# sources changed and the Node side (dist/node), then starts Orthanc (our own process, storage under var/), seeds the demo studies
# on first start, makes sure a model exists, starts the companion server and prints the viewer URL.
# Ctrl-C stops everything. Options and environment: see scripts/start.ts (--help).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1; then
  echo "Node.js 20 or newer is needed and was not found. On Debian 12: install Node 20 (e.g. from" >&2
  echo "https://nodejs.org or the NodeSource packages), then run this command again." >&2
  exit 1
fi
# `node --import tsx` needs Node 20.6 or newer.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 6) ? 0 : 1)'; then
  echo "Node.js 20.6 or newer is needed; found $(node --version). Install Node 20 (LTS) and run again." >&2
  exit 1
fi

bash scripts/install-deps.sh

if [ -f webpack.config.js ]; then
  stamp=dist/extension/index.js
  if [ ! -f "$stamp" ] || [ ! -f dist/mode/index.js ] || [ -n "$(find core extension mode webpack.config.js package-lock.json -newer "$stamp" -type f -print -quit 2>/dev/null)" ]; then
    echo "Building the viewer extension and mode (webpack)…"
    npx webpack --mode production >/dev/null
  fi
fi

# The Node side runs as compiled JavaScript (dist/node, esbuild: about a tenth of a second).
node scripts/build-node.mjs >/dev/null
exec node dist/node/start.js "$@"
