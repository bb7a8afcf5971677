#!/usr/bin/env bash
# The project's one test command (README, .ci/run): lint, type-check, build the browser bundles,
# then every test under test/ with Node's test runner. `bash scripts/test.sh unit` runs one folder.
set -euo pipefail
cd "$(dirname "$0")/.."
only="${1:-}"
if [ -z "$only" ]; then
  echo "== lint"
  npx eslint .
  npx prettier --check . >/dev/null
  echo "== typecheck"; npx tsc -p tsconfig.json --noEmit
  if [ -f webpack.config.js ]; then echo "== build"; npx webpack --mode production >/dev/null; fi
fi
mapfile -t files < <(find "test/${only}" -name '*.test.ts' -not -path '*/node_modules/*' | sort)
if [ "${#files[@]}" -eq 0 ]; then echo "no test files under test/${only}" >&2; exit 1; fi
export NODE_OPTIONS="${NODE_OPTIONS:-} --max-old-space-size=8192"
exec node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-1}" "${files[@]}"
