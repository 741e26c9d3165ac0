"""Put an "Open in Colab" badge and a Colab setup cell under the title of every lecture.

    python scripts/colab_cells.py           # insert/update the two cells in notebooks/NN_*.ipynb
    python scripts/colab_cells.py --check   # exit 1, listing notebooks with missing/stale cells

The repository URL (``[project.urls] Repository``) and the version (``[project] version``)
are read from pyproject.toml, the one place they are written. The badge opens the notebook
at the release tag ``v{version}``, and the setup cell clones that same tag, so a student in
Colab runs the notebook with the package and data it was written for.

Layout: cell 0 is the lecture's title (a markdown cell starting with "# "; no code comes
before it), cell 1 the badge, cell 2 the setup cell. The setup cell is also tagged
``remove-cell``, so the course website (MyST-NB) leaves it out of the page.

The setup cell does nothing outside Colab (it prints nothing and has no output), so the
committed notebooks keep the outputs of a real local run. Inside Colab it clones the
repository, installs ``course_utils`` with ``--no-deps`` (Colab's own torch and torchvision
are kept; numpy, scipy, matplotlib and tqdm are preinstalled there), points
``COURSE_DATA_DIR`` at the clone's data/ and makes ``import course_utils`` work in the
running kernel.

Running the script again changes nothing; only the two cells (tagged ``colab-badge`` and
``colab-setup``) are ever written, everything else in a notebook is kept byte for byte.
tests/test_colab.py checks the result.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
BADGE_TAG = "colab-badge"
SETUP_TAG = "colab-setup"
HIDE_TAG = "remove-cell"  # MyST-NB (the website) drops cells with this tag from the page
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"

SETUP_TEMPLATE = '''\
# Colab only: fetch the course at its release and make `course_utils` importable.
# Outside Colab (JupyterLab, papermill, nbval) this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import shutil
    import subprocess

    COURSE_REPO = "{url}"
    COURSE_REF = "{tag}"  # the release this notebook belongs to
    COURSE_CLONE = "/content/{name}"
    steps = []
    if not os.path.isfile(os.path.join(COURSE_CLONE, "pyproject.toml")):  # no complete clone yet
        shutil.rmtree(COURSE_CLONE, ignore_errors=True)  # what an interrupted clone left
        steps.append(["git", "clone", "--quiet", "--depth", "1", "--branch", COURSE_REF,
                      COURSE_REPO, COURSE_CLONE])
    # --no-deps: keep Colab's own torch and torchvision (numpy, scipy, matplotlib, tqdm are there)
    steps.append([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                  "--editable", COURSE_CLONE])
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:  # show why, not just an exit status
            raise RuntimeError(f"{{' '.join(cmd[:3])}} failed:\\n{{done.stderr}}")
    if COURSE_CLONE not in sys.path:
        sys.path.insert(0, COURSE_CLONE)  # importable now, without restarting the kernel
    os.environ["COURSE_DATA_DIR"] = os.path.join(COURSE_CLONE, "data")
    os.chdir(os.path.join(COURSE_CLONE, "notebooks"))  # relative paths as in a local run'''


def project_info(pyproject: Path = ROOT / "pyproject.toml") -> tuple[str, str]:
    """The repository URL and the release tag ``v{version}``, from pyproject.toml."""
    project = tomllib.loads(pyproject.read_text())["project"]
    url = project["urls"]["Repository"].rstrip("/")
    if url.endswith(".git"):
        url = url[: -len(".git")]
    return url, f"v{project['version']}"


def github_path(url: str) -> str:
    """``owner/repo`` of a https://github.com/owner/repo URL."""
    m = re.fullmatch(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)", url)
    if not m:
        raise ValueError(
            f"[project.urls] Repository must be https://github.com/<owner>/<repo>, got {url!r}"
        )
    return f"{m.group(1)}/{m.group(2)}"


def colab_url(url: str, tag: str, notebook: str, folder: str = "notebooks") -> str:
    """Colab's address of ``folder/notebook`` in the repository at ``tag``."""
    return f"https://colab.research.google.com/github/{github_path(url)}/blob/{tag}/{folder}/{notebook}"


def badge_source(url: str, tag: str, notebook: str, folder: str = "notebooks") -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(url, tag, notebook, folder)})"


def setup_source(url: str, tag: str) -> str:
    return SETUP_TEMPLATE.format(url=url, tag=tag, name=github_path(url).split("/")[1])


def _tags(tag: str) -> list[str]:
    return [tag, HIDE_TAG] if tag == SETUP_TAG else [tag]


def _is_title(cell) -> bool:
    return cell.cell_type == "markdown" and cell.source.startswith("# ")


def _cell(nb, cell_type: str, source: str, tag: str):
    cell = {"cell_type": cell_type, "metadata": {"tags": _tags(tag)}, "source": source}
    if cell_type == "code":
        cell.update(execution_count=None, outputs=[])
    if nb.nbformat_minor >= 5:  # cell ids exist from nbformat 4.5; keep them stable
        cell["id"] = tag
    return nbformat.from_dict(cell)


def _tagged(nb, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in c.metadata.get("tags", [])]


def problems(nb, notebook: str, url: str, tag: str) -> list[str]:
    """What is missing or out of date in ``nb`` (named ``notebook``); empty when all is right."""
    if not nb.cells or not _is_title(nb.cells[0]):
        return ["cell 0 must be the lecture's title (a markdown cell starting with '# ')"]
    found = []
    for pos, (ctag, ctype, source) in enumerate([
        (BADGE_TAG, "markdown", badge_source(url, tag, notebook)),
        (SETUP_TAG, "code", setup_source(url, tag)),
    ], start=1):
        where = _tagged(nb, ctag)
        if not where:
            found.append(f"no cell tagged {ctag!r}")
            continue
        if where != [pos]:
            found.append(f"the {ctag!r} cell must be cell {pos} (and only once), found at {where}")
            continue
        cell = nb.cells[pos]
        if cell.cell_type != ctype or cell.source != source:
            found.append(f"the {ctag!r} cell is out of date")
        elif dict(cell.metadata) != {"tags": _tags(ctag)}:
            found.append(f"the {ctag!r} cell's metadata must be exactly tags {_tags(ctag)}")
        elif ctype == "code" and (cell.outputs or cell.execution_count not in (None, 1)):
            found.append(f"the {ctag!r} cell has outputs or an execution count other than 1")
    return found


def update(nb, notebook: str, url: str, tag: str) -> bool:
    """Insert or refresh the two cells under the title of ``nb``; return True if it changed.

    Raises:
        ValueError: the notebook has no title (a markdown cell starting with "# ").
    """
    if not problems(nb, notebook, url, tag):
        return False
    # a run's count of the old setup cell stays (1): outside Colab the cell does nothing, so a
    # run of the new one would give the same (empty) output and the other cells' counts
    ran = [c.execution_count for c in nb.cells if SETUP_TAG in c.metadata.get("tags", [])]
    nb.cells = [c for c in nb.cells if not {BADGE_TAG, SETUP_TAG} & set(c.metadata.get("tags", []))]
    setup = _cell(nb, "code", setup_source(url, tag), SETUP_TAG)
    setup.execution_count = 1 if ran == [1] else None
    titles = [i for i, c in enumerate(nb.cells) if _is_title(c)]
    if not titles:
        raise ValueError(f"{notebook}: no title cell (a markdown cell starting with '# ')")
    title = nb.cells.pop(titles[0])
    nb.cells[:0] = [title, _cell(nb, "markdown", badge_source(url, tag, notebook), BADGE_TAG),
                    setup]
    return True


def lecture_notebooks(folder: Path = ROOT / "notebooks") -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def check(
    paths: list[Path] | None = None, pyproject: Path = ROOT / "pyproject.toml"
) -> dict[str, list[str]]:
    """``{notebook name: problems}`` for every notebook whose cells are missing or stale."""
    url, tag = project_info(pyproject)
    result = {}
    for path in paths if paths is not None else lecture_notebooks():
        found = problems(nbformat.read(path, as_version=4), path.name, url, tag)
        if found:
            result[path.name] = found
    return result


def write(paths: list[Path] | None = None, pyproject: Path = ROOT / "pyproject.toml") -> list[Path]:
    """Update the notebooks in place; return those that changed."""
    url, tag = project_info(pyproject)
    changed = []
    for path in paths if paths is not None else lecture_notebooks():
        nb = nbformat.reads(path.read_text(), as_version=4)
        if update(nb, path.name, url, tag):
            path.write_text(nbformat.writes(nb) + "\n")  # the same layout as clean_notebooks.py
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    ap.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 if a notebook is not up to date")
    args = ap.parse_args(argv)
    paths = args.notebooks or None
    if args.check:
        stale = check(paths)
        for name, found in stale.items():
            print(f"{name}: {'; '.join(found)}")
        if stale:
            print("run: python scripts/colab_cells.py", file=sys.stderr)
            return 1
        print("Colab badge and setup cells: up to date")
        return 0
    changed = write(paths)
    for path in changed:
        print(f"{path.name}: updated")
    if not changed:
        print("Colab badge and setup cells: already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
