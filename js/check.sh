#!/usr/bin/env bash
# The JavaScript checks, for .ci/run: a clean install from package-lock.json, the type check,
# the bundle build (esbuild into src/ipyassistant/static/) and the vitest suite under jsdom.
set -euo pipefail
cd "$(dirname "$0")/.."

export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

echo "== npm ci"
npm ci --no-audit --no-fund
echo "== tsc"
npm run --silent typecheck
echo "== esbuild"
npm run --silent build
echo "== vitest"
npm test --silent
