"""Build the course website from the committed notebooks (Sphinx + MyST-NB).

    python scripts/build_site.py [--out _site]

Copies notebooks/NN_*.ipynb into docs/lectures/ (git-ignored) and runs Sphinx
with warnings as errors. Nothing is executed: the pages show the committed
full-profile outputs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(out: Path) -> Path:
    lectures = ROOT / "docs" / "lectures"
    shutil.rmtree(lectures, ignore_errors=True)
    lectures.mkdir(parents=True)
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        shutil.copy(nb, lectures / nb.name)
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going",
           str(ROOT / "docs"), str(out)]
    subprocess.run(cmd, check=True)
    return out / "index.html"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "_site")
    print(f"website: {build(ap.parse_args().out)}")
