#!/usr/bin/env bash
# Set up .venv with the test tools, then: ruff (code and notebooks), the unit tests
# of course_utils, and nbval (lax) over every notebook in the smoke profile.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=dev bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export MPLBACKEND=Agg
echo "== ruff"
ruff check .
echo "== pytest: unit tests and notebook validation (profile: smoke)"
set +e
COURSE_PROFILE=smoke python -m pytest tests notebooks \
    --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600 \
    -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$rc"
