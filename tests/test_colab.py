"""The Colab badge and setup cell that scripts/colab_cells.py puts at the top of every lecture.

The setup cell is run here for real, in a subprocess, twice: without ``google.colab`` (it must
do nothing and print nothing) and with a fake ``google.colab`` module and a recording
``subprocess`` (no network): it must clone the pinned tag of the pyproject.toml URL and
install the course with ``--no-deps``, never torch or torchvision.
"""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import colab_cells  # noqa: E402

NOTEBOOKS = colab_cells.lecture_notebooks()
URL, TAG = colab_cells.project_info()
CLONE = "/content/" + colab_cells.github_path(URL).split("/")[1]

# Runs a cell's source with every way of starting a process replaced by a recorder.
HARNESS = r"""
import json, os, subprocess, sys, types

cell, mode, result_file = sys.argv[1:4]
calls = []

def recorder(kind):
    def record(*args, **kwargs):
        calls.append({"kind": kind, "args": args[0] if args else kwargs.get("args")})
        return subprocess.CompletedProcess(args[0] if args else None, 0, "", "")
    return record

real_json_dump, real_open = json.dump, open
for name in ("run", "call", "check_call", "check_output", "Popen", "getoutput", "getstatusoutput"):
    setattr(subprocess, name, recorder("subprocess." + name))
for name in ("system", "popen", "execv", "execvp", "spawnv", "chdir"):
    setattr(os, name, recorder("os." + name))
os.path.isdir = os.path.isfile = lambda path: False  # as in a fresh Colab runtime: no clone yet
if mode == "colab":
    google, colab = types.ModuleType("google"), types.ModuleType("google.colab")
    google.colab = colab
    sys.modules["google"], sys.modules["google.colab"] = google, colab
path_before = list(sys.path)
source = real_open(cell).read()
exec(compile(source, "colab-setup", "exec"), {"__name__": "__main__"})
with real_open(result_file, "w") as f:
    real_json_dump({
        "calls": calls,
        "data_dir": os.environ.get("COURSE_DATA_DIR"),
        "path_added": [p for p in sys.path if p not in path_before],
        "path0": sys.path[0],
    }, f)
"""


def setup_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if colab_cells.SETUP_TAG in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} colab-setup cells"
    return cells[0]


def run_setup_cell(tmp_path: Path, source: str, mode: str) -> tuple[dict, subprocess.CompletedProcess]:
    cell = tmp_path / "cell.py"
    cell.write_text(source)
    (tmp_path / "harness.py").write_text(HARNESS)
    result = tmp_path / "result.json"
    env = {"PATH": "/usr/bin:/bin", "COURSE_DATA_DIR": "unchanged"}
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "harness.py"), str(cell), mode, str(result)],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(result.read_text()), proc


def test_pyproject_gives_a_github_url_and_a_version_tag():
    assert colab_cells.github_path(URL).count("/") == 1
    assert TAG.startswith("v") and TAG[1:].replace(".", "").isdigit()


def test_every_lecture_has_an_up_to_date_badge_and_setup_cell():
    assert NOTEBOOKS
    stale = colab_cells.check()
    assert not stale, f"run `python scripts/colab_cells.py`: {stale}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_badge_opens_this_notebook_at_the_pinned_tag(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), (
        f"{path.name}: the title must come first (no code before it)")
    badge = nb.cells[1]
    assert badge.cell_type == "markdown" and badge.metadata.get("tags") == [colab_cells.BADGE_TAG]
    target = f"https://colab.research.google.com/github/{colab_cells.github_path(URL)}/blob/{TAG}/notebooks/{path.name})"
    assert badge.source.startswith("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](")
    assert badge.source.endswith(target)
    setup = nb.cells[2]
    # tagged remove-cell: the website leaves the (Colab-only) setup code out of the page
    assert setup.metadata.get("tags") == [colab_cells.SETUP_TAG, "remove-cell"]
    assert f'COURSE_REF = "{TAG}"' in setup.source and f'COURSE_REPO = "{URL}"' in setup.source
    assert not setup.outputs and setup.execution_count in (None, 1)


def test_every_lecture_has_the_same_setup_cell():
    sources = {setup_cell(p).source for p in NOTEBOOKS}
    assert sources == {colab_cells.setup_source(URL, TAG)}


def test_setup_cell_does_nothing_outside_colab(tmp_path):
    result, proc = run_setup_cell(tmp_path, setup_cell(NOTEBOOKS[0]).source, "local")
    assert proc.stdout == "" and proc.stderr == ""
    assert result["calls"] == []
    assert result["data_dir"] == "unchanged"
    assert result["path_added"] == []


def test_setup_cell_in_colab_clones_the_pinned_tag_and_keeps_colabs_torch(tmp_path):
    result, proc = run_setup_cell(tmp_path, setup_cell(NOTEBOOKS[0]).source, "colab")
    assert proc.stdout == "" and proc.stderr == ""
    calls = result["calls"]
    commands = [c["args"] for c in calls if c["kind"] != "os.chdir"]
    assert len(commands) == 2 and [c["kind"] for c in calls[:2]] == ["subprocess.run"] * 2, calls
    assert all(isinstance(c, list) for c in commands), f"commands given as shell strings: {commands}"
    clone, pip = commands
    assert clone[:2] == ["git", "clone"]
    assert clone[-2:] == [URL, CLONE]
    assert "--depth" in clone and clone[clone.index("--depth") + 1] == "1"
    assert "--branch" in clone and clone[clone.index("--branch") + 1] == TAG
    assert pip[1:4] == ["-m", "pip", "install"]
    assert "--no-deps" in pip
    targets = [a for a in pip[4:] if not a.startswith("-")]
    assert targets == [CLONE], f"pip must install only the course: {pip}"
    assert not [a for c in commands for a in c if "torch" in a.lower()], commands
    assert result["data_dir"] == f"{CLONE}/data"
    assert result["path0"] == CLONE  # `import course_utils` works in the running kernel
    assert [c["args"] for c in calls if c["kind"] == "os.chdir"] == [f"{CLONE}/notebooks"]


def test_update_is_idempotent_and_check_finds_missing_and_stale_cells(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nversion = "1.2.3"\n[project.urls]\nRepository = "https://github.com/o/r.git"\n'
    )
    assert colab_cells.project_info(pyproject) == ("https://github.com/o/r", "v1.2.3")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("x = 1", execution_count=1)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    assert set(colab_cells.check([path], pyproject)["01_x.ipynb"]) == {
        "no cell tagged 'colab-badge'", "no cell tagged 'colab-setup'"}
    assert colab_cells.write([path], pyproject) == [path]
    once = path.read_text()
    assert colab_cells.write([path], pyproject) == [] and path.read_text() == once
    assert colab_cells.check([path], pyproject) == {}
    written = nbformat.read(path, as_version=4)
    assert [c.source for c in written.cells[:1] + written.cells[3:]] == ["# Title", "x = 1"]
    assert "blob/v1.2.3/notebooks/01_x.ipynb" in written.cells[1].source
    # a new version makes both cells stale; updating replaces them, it does not add more
    pyproject.write_text(pyproject.read_text().replace("1.2.3", "1.3.0"))
    assert len(colab_cells.check([path], pyproject)["01_x.ipynb"]) == 2
    colab_cells.write([path], pyproject)
    written = nbformat.read(path, as_version=4)
    assert len(written.cells) == 4 and "v1.3.0" in written.cells[2].source
    # a run of the notebook (the setup cell executed first) is still up to date
    written.cells[2].execution_count = 1
    nbformat.write(written, path)
    assert colab_cells.check([path], pyproject) == {}
    # ... and refreshing its (no-op) setup cell keeps the run's count, so the counts stay 1, 2, ...
    pyproject.write_text(pyproject.read_text().replace("1.3.0", "1.4.0"))
    colab_cells.write([path], pyproject)
    assert nbformat.read(path, as_version=4).cells[2].execution_count == 1
    # a notebook without a title is refused with a clear error
    untitled = tmp_path / "02_y.ipynb"
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, untitled)
    assert colab_cells.check([untitled], pyproject)["02_y.ipynb"] == [
        "cell 0 must be the lecture's title (a markdown cell starting with '# ')"]
    with pytest.raises(ValueError, match="02_y.ipynb: no title cell"):
        colab_cells.write([untitled], pyproject)
    assert subprocess.run([sys.executable, str(ROOT / "scripts" / "colab_cells.py"), "--check"],
                          capture_output=True, cwd=ROOT).returncode == 0
