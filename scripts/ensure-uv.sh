#!/usr/bin/env bash
# Print the path of a usable `uv`, installing it into .tools/ with pip when the machine lacks it.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$root/.tools/bin/uv" ]; then
  python3 -m venv "$root/.tools" >&2
  "$root/.tools/bin/pip" install --quiet --disable-pip-version-check 'uv==0.13.*' >&2
fi
echo "$root/.tools/bin/uv"
