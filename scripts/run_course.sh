#!/usr/bin/env bash
# The course's main job: set up .venv, then execute every lecture notebook with papermill.
# Executed notebooks and report.md go to output/<profile>/. Extra arguments go to
# course_utils.run_notebooks, e.g. --profile full, --only 01.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m course_utils.run_notebooks "$@"
