#!/usr/bin/env bash
# Build the course website into _site/ (open _site/index.html). See scripts/build_site.py.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=dev bash scripts/setup.sh
exec .venv/bin/python scripts/build_site.py "$@"
