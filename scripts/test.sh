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
  # From scratch: an incremental build keeps the declarations of deleted files and can pass wrongly.
  echo "== typecheck"; rm -rf .tsbuild; npx tsc -b
  echo "== build"; npx webpack --mode production >/dev/null; node scripts/build-node.mjs
fi
mapfile -t files < <(find "test/${only}" -name '*.test.ts' -not -path '*/node_modules/*' | sort)
if [ "${#files[@]}" -eq 0 ]; then echo "no test files under test/${only}" >&2; exit 1; fi
export NODE_OPTIONS="${NODE_OPTIONS:-} --max-old-space-size=8192"
# Every test has a timeout (10 min unless it sets its own). TAP output, also copied to a file:
# under CI=true a skipped test fails the run — a missing Chromium, WebGPU adapter, Orthanc or data
# folder is an install bug there, not a reason to skip.
tap="$(mktemp)"
trap 'rm -f "$tap"' EXIT
set +e
node --import tsx --test --test-reporter=tap --test-timeout="${TEST_TIMEOUT_MS:-600000}" --test-concurrency="${TEST_CONCURRENCY:-1}" "${files[@]}" | tee "$tap"
status=${PIPESTATUS[0]}
set -e
if [ "${CI:-}" = "true" ] && grep -qE '^# skipped [1-9]' "$tap"; then
  echo "CI: tests were skipped; under CI every test must run:" >&2
  grep -E '# SKIP' "$tap" | sed 's/^ */  /' >&2
  status=1
fi
exit "$status"
