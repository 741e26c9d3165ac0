#!/usr/bin/env bash
# Create (once) the virtual environment .venv and install the course into it.
# Used by scripts/run_course.sh and scripts/run_tests.sh; safe to run again.
#   PYTHON=python3.11 bash scripts/setup.sh   # choose the interpreter (Python >= 3.10)
#   EXTRAS=dev bash scripts/setup.sh          # also the test tools
#   COURSE_DEPS=latest bash scripts/setup.sh  # upgrade every dependency to the newest release
#                                             # pyproject.toml allows (.ci/run's version drift)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
spec="."
[ -n "${EXTRAS:-}" ] && spec=".[${EXTRAS}]"
upgrade=""
[ "${COURSE_DEPS:-}" = latest ] && upgrade="--upgrade --upgrade-strategy eager"
echo "== installing course_utils ($spec) and its dependencies${upgrade:+ (COURSE_DEPS=latest: newest allowed)}"
# (This machine's pip config lists local package folders; its "Location ... ignored" noise is dropped.)
# shellcheck disable=SC2086  # $upgrade: empty, or two options
python -m pip install --quiet --disable-pip-version-check $upgrade --editable "$spec" 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
# Register the venv's kernel as "python3" for papermill/nbval/JupyterLab started from it.
python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
