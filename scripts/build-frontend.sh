#!/usr/bin/env bash
# Builds the dashboard's static export into frontend/out/ (served by the backend at /), doing
# only what is needed, so it is cheap to call before every `make run`:
#   - `npm ci` when node_modules is missing or older than package-lock.json;
#   - `npm run build` when out/ is missing, older than any source file, or was built with another
#     NEXT_PUBLIC_API_URL.
# Usage: bash scripts/build-frontend.sh [--force]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/frontend"
export NEXT_TELEMETRY_DISABLED=1
force=0
[[ "${1:-}" == "--force" ]] && force=1

log() { echo "build-frontend: $*"; }

# 1. Dependencies. npm writes node_modules/.package-lock.json on every install.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing dependencies (npm ci)"
  npm ci --no-audit --no-fund
  touch node_modules/.package-lock.json
else
  log "dependencies up to date"
fi

# 2. The static export.
stamp="out/.build-stamp"
want_stamp="NEXT_PUBLIC_API_URL=${NEXT_PUBLIC_API_URL-}"
sources=(app components hooks lib public types package.json package-lock.json next.config.ts
  postcss.config.mjs tsconfig.json)
for env_file in .env .env.local .env.production .env.production.local; do
  [[ -f "$env_file" ]] && sources+=("$env_file")
  if [[ -f "$env_file" ]] && grep -q '^NEXT_PUBLIC_API_URL=' "$env_file"; then
    log "warning: $env_file sets NEXT_PUBLIC_API_URL, so the exported build will not call its own origin"
  fi
done

reason=""
if [[ $force -eq 1 ]]; then
  reason="--force"
elif [[ ! -f out/index.html || ! -f "$stamp" ]]; then
  reason="no build yet"
elif [[ "$(cat "$stamp")" != "$want_stamp" ]]; then
  reason="NEXT_PUBLIC_API_URL changed"
else
  newer="$(find "${sources[@]}" -newer "$stamp" -type f -print -quit 2>/dev/null || true)"
  [[ -n "$newer" ]] && reason="$newer changed"
fi

if [[ -z "$reason" ]]; then
  log "out/ is up to date"
  exit 0
fi
log "building the static export ($reason)"
npm run build
echo "$want_stamp" >"$stamp"
log "done: frontend/out/"
