"""Refresh lectures the one way they are committed: a full-profile run, then the clean-up.

    python scripts/refresh_lecture.py 03          # lecture 03
    python scripts/refresh_lecture.py 03 05 09    # several, one after another
    python scripts/refresh_lecture.py all         # every lecture (an hour or more on a CPU)

For each lecture it

1. runs the notebook top to bottom with papermill in the **full** profile (no ``-p``, so
   no parameters cell is injected), in a clean environment: ``MPLBACKEND``,
   ``COURSE_PROFILE``, ``COURSE_DEVICE`` and ``COURSE_COMPILE`` are removed, so that
   neither a non-inline matplotlib backend (which drops every figure) nor a leftover
   smoke or device setting leaks into the committed outputs;
2. writes the run to ``output/refresh/`` first and copies it over the committed
   notebook only if every cell ran (a failed run leaves the committed one untouched);
3. cleans its metadata (``scripts/clean_notebooks.py``), refreshes the Colab badge and
   setup cell (``scripts/colab_cells.py``) and rewrites the student copies
   (``scripts/student_copies.py``).

Run it from the course's virtual environment (``source .venv/bin/activate``). It prints
each lecture's wall time. Checkpoints under ``notebooks/checkpoints/`` are loaded when
present: delete a lecture's checkpoints first to retrain from scratch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SCRIPTS = ROOT / "scripts"
OUT = ROOT / "output" / "refresh"
# settings that must not reach a committed run
DROPPED_ENV = ("MPLBACKEND", "COURSE_PROFILE", "COURSE_DEVICE", "COURSE_COMPILE")


def find(number: str) -> Path:
    """The lecture ``NN_*.ipynb`` for ``number`` ("3", "03" or the file name)."""
    key = Path(number).name.split("_")[0].removesuffix(".ipynb")
    if not key.isdigit():
        raise SystemExit(f"expected a lecture number such as 03 (or 'all'), got {number!r}")
    found = sorted(NOTEBOOKS.glob(f"{int(key):02d}_*.ipynb"))
    if len(found) != 1:
        raise SystemExit(f"no single lecture numbered {int(key):02d} in notebooks/: {found}")
    return found[0]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def refresh(path: Path) -> float:
    """Run ``path`` in the full profile and commit-clean it; return the seconds it took."""
    OUT.mkdir(parents=True, exist_ok=True)
    executed = OUT / path.name
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "papermill", str(path), str(executed), "--cwd", str(NOTEBOOKS),
           "--kernel", "python3", "--no-progress-bar", "--log-level", "WARNING"]
    done = subprocess.run(cmd, env=clean_env())
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{path.name} failed after {seconds:.0f} s; the committed notebook is "
                         f"unchanged, the failed run is in {executed.relative_to(ROOT)}")
    shutil.copyfile(executed, path)
    for script, args in (("clean_notebooks.py", [str(path)]), ("colab_cells.py", [str(path)]),
                         ("student_copies.py", [])):
        subprocess.run([sys.executable, str(SCRIPTS / script), *args], check=True,
                       stdout=subprocess.DEVNULL)
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("lectures", nargs="+", help="lecture numbers (03 05 ...) or 'all'")
    args = ap.parse_args(argv)
    try:
        import papermill  # noqa: F401
    except ImportError:
        raise SystemExit("papermill is not installed here: run `source .venv/bin/activate` "
                         "(after `bash scripts/setup.sh`)") from None
    if args.lectures == ["all"]:
        paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    else:
        paths = [find(n) for n in args.lectures]
    for path in paths:
        print(f"{path.name}: running (full profile) ...", flush=True)
        seconds = refresh(path)
        print(f"{path.name}: refreshed in {seconds // 60:.0f} min {seconds % 60:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
