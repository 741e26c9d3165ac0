"""Write the student copies of the lectures: no outputs, no solutions.

    python scripts/student_copies.py           # write student/NN_*.ipynb from notebooks/NN_*.ipynb
    python scripts/student_copies.py --check   # exit 1 if a copy is missing, stale or extra

notebooks/ holds the instructor copies: committed with the outputs of a full run and
with every exercise's solution folded in a ``<details>`` block of a markdown cell. The
student copy of each is the same notebook with

* every output and execution count cleared (students run it themselves);
* every ``<details>...</details>`` block replaced by one line saying the solution was
  removed (the exercise prompts stay, word for word);
* any cell tagged ``solution`` replaced by that line too (no lecture uses such cells today);
* the Colab badge pointing at the student copy instead of the instructor copy.

The copies live in a top-level student/ folder, not under notebooks/: pytest/nbval and
the website take notebooks/ only. Regenerate them after editing a lecture;
tests/test_student_copies.py fails when they are out of sync.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import colab_cells  # noqa: E402  (scripts/ is not a package)

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "notebooks"
STUDENT_DIR = ROOT / "student"
SOLUTION_TAG = "solution"
REMOVED = (
    "*(Solution removed in the student copy: try it first; "
    "the instructor copy in notebooks/ has it.)*"
)
DETAILS = re.compile(r"<details\b.*?</details>", re.S | re.I)
README = """\
# Student copies (generated: do not edit)

The lectures of `notebooks/` without outputs and without the exercises' solutions, for
students to run and solve themselves. Written by `python scripts/student_copies.py` from
the instructor copies in `notebooks/`; edit those and run the script again.
"""


def strip_solutions(source: str) -> tuple[str, int]:
    """Replace every ``<details>...</details>`` block of a markdown source by :data:`REMOVED`.

    Returns the new source and the number of blocks removed.
    """
    return DETAILS.subn(REMOVED, source)


def student_notebook(nb, name: str | None = None):
    """The student copy of the instructor notebook ``nb`` (a new object; ``nb`` is unchanged).

    ``name`` is the notebook's file name, used to point its Colab badge at student/.
    """
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if SOLUTION_TAG in tags:
            new = {"cell_type": "markdown", "metadata": {}, "source": REMOVED}
            if "id" in cell:
                new["id"] = cell["id"]
            nb.cells[i] = nbformat.from_dict(new)
        elif cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            if colab_cells.BADGE_TAG in tags and name:
                url, tag = colab_cells.project_info()
                cell.source = colab_cells.badge_source(url, tag, name, folder=STUDENT_DIR.name)
            cell.source = strip_solutions(cell.source)[0]
    return nb


def student_text(source: Path) -> str:
    """The exact file content of the student copy of ``source``."""
    nb = nbformat.reads(source.read_text(), as_version=4)
    return nbformat.writes(student_notebook(nb, source.name)) + "\n"


def _plan(source_dir: Path, student_dir: Path) -> tuple[dict[Path, str], list[Path]]:
    sources = colab_cells.lecture_notebooks(source_dir)
    expected = {student_dir / p.name: student_text(p) for p in sources}
    expected[student_dir / "README.md"] = README
    extra = [p for p in colab_cells.lecture_notebooks(student_dir) if p not in expected]
    return expected, extra


def check(source_dir: Path = SOURCE_DIR, student_dir: Path = STUDENT_DIR) -> list[str]:
    """One line per student copy that is missing, out of sync, or has no instructor copy."""
    expected, extra = _plan(source_dir, student_dir)
    found = []
    for path, text in expected.items():
        if not path.is_file():
            found.append(f"{path.name}: missing")
        elif path.read_text() != text:
            found.append(f"{path.name}: out of sync with {source_dir.name}/{path.name}")
    found += [f"{p.name}: no {source_dir.name}/{p.name} to copy it from" for p in extra]
    return found


def write(source_dir: Path = SOURCE_DIR, student_dir: Path = STUDENT_DIR) -> list[Path]:
    """Write (or delete) what is out of sync; return the paths changed."""
    expected, extra = _plan(source_dir, student_dir)
    student_dir.mkdir(exist_ok=True)
    changed = []
    for path, text in expected.items():
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    for path in extra:
        path.unlink()
        changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 if student/ is out of sync")
    args = ap.parse_args(argv)
    if args.check:
        found = check()
        for line in found:
            print(line)
        if found:
            print("run: python scripts/student_copies.py", file=sys.stderr)
            return 1
        print("student copies: in sync")
        return 0
    changed = write()
    for path in changed:
        print(f"{path.relative_to(ROOT)}: {'written' if path.exists() else 'deleted'}")
    if not changed:
        print("student copies: already in sync")
    return 0


if __name__ == "__main__":
    sys.exit(main())
