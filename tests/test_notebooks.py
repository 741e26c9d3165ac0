"""Notebook hygiene (what nbval does not check) and the course's main job.

nbval itself runs over notebooks/ from scripts/run_tests.sh; these tests check
that every lecture is committed clean: outputs of a real run, no errors, no
machine paths, no stray metadata, a papermill parameters cell, checked cells,
and exercises with folded solutions.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils import run_notebooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = run_notebooks.find_notebooks(ROOT / "notebooks")
ALLOWED_NB_METADATA = {"kernelspec", "language_info"}
ALLOWED_CELL_METADATA = {"tags"}
MAX_BYTES = 2_500_000
COLAB_SETUP = "colab-setup"  # scripts/colab_cells.py's cell: a no-op outside Colab (tests/test_colab.py)


def _lecture_code(nb):
    """The code cells other than the Colab setup cell."""
    return [c for c in nb.cells if c.cell_type == "code" and COLAB_SETUP not in c.metadata.get("tags", [])]


def test_there_are_lecture_notebooks():
    assert NOTEBOOKS, "no NN_*.ipynb notebooks in notebooks/"
    assert NOTEBOOKS[0].name.startswith("01_")


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request):
    path = request.param
    return path, nbformat.read(path, as_version=4)


def test_parameters_cell_and_profile(notebook):
    path, nb = notebook
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert re.search(r'^PROFILE = "full"$', params[0].source, re.M), (
        f"{path.name}: the parameters cell must set PROFILE = \"full\""
    )
    after = "".join(c.source for c in code[code.index(params[0]) + 1 :])
    assert "resolve_profile(PROFILE)" in after, f"{path.name}: call cu.resolve_profile after the parameters cell"
    assert "environment_report" in "".join(c.source for c in _lecture_code(nb)[:3]), (
        f"{path.name}: print the versions and device in a first cell"
    )


def test_committed_with_outputs_of_a_clean_full_run(notebook):
    path, nb = notebook
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [o for c in code for o in c.outputs]
    assert outputs, f"{path.name}: committed without outputs"
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: error output {errors[0].ename}: {errors[0].evalue}"
    # the Colab setup cell may be unrun (inserted by scripts/colab_cells.py) or run first
    setup = [c.execution_count for c in code if COLAB_SETUP in c.metadata.get("tags", [])]
    assert setup in ([], [None], [1]), f"{path.name}: the colab-setup cell has execution count {setup}"
    counts = [c.execution_count for c in _lecture_code(nb)]
    first = 2 if setup == [1] else 1
    assert counts == list(range(first, len(counts) + first)), f"{path.name}: not run top to bottom once"
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "profile: smoke" not in streams.lower(), f"{path.name}: committed from a smoke run"


def test_no_machine_paths_and_modest_size(notebook):
    path, _ = notebook
    text = path.read_text()
    found = re.findall(r"(/work/|/tmp/|/root/|/home/|/Users/|C:\\\\)", text)
    assert not found, f"{path.name}: contains absolute paths {set(found)}"
    assert path.stat().st_size < MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes, keep figures small"


# Calls that put a figure into the cell's output: plt.show(), display(fig) and the course's
# plotting helpers (course_utils.plotting, also imported under their own names).
DRAWING_CALLS = {"show", "display", "show_images", "scatter_2d", "plot_function_2d",
                 "plot_samples_density", "plot_curves"}


def draws(source: str) -> bool:
    """Whether a cell calls a drawing function at its top level (not only inside a def)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:  # a cell with IPython magics: fall back to a plain search
        return bool(re.search(r"\b(plt\.show|show_images|display)\(", source))
    found = False

    class Visitor(ast.NodeVisitor):
        def visit_FunctionDef(self, node):  # a definition draws only when it is called
            pass

        visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

        def visit_Call(self, node):
            nonlocal found
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name in DRAWING_CALLS and (name != "show" or isinstance(f, ast.Attribute)):
                if name != "display" or any(isinstance(a, ast.Name) and "fig" in a.id
                                            for a in node.args):
                    found = True
            self.generic_visit(node)

    Visitor().visit(tree)
    return found


def test_draws_finds_drawing_cells():
    assert draws("plt.plot(x)\nplt.show()") and draws("show_images(x, nrow=4)")
    assert draws("for ax in axes:\n    cu.plot_curves(h, ax=ax)") and draws("display(fig)")
    assert not draws("def f():\n    plt.show()") and not draws("print(1)")
    assert not draws("display(Markdown(table))")


def test_every_drawing_cell_has_its_figure(notebook):
    # A run under a non-inline backend (MPLBACKEND=Agg) drops every figure silently.
    path, nb = notebook
    missing = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and draws(c.source)
               and not any("image/png" in o.get("data", {}) for o in c.outputs)]
    assert not missing, (
        f"{path.name}: cells {missing} draw but have no image/png output; refresh the lecture "
        "with `python scripts/refresh_lecture.py NN`"
    )


def test_no_stray_metadata(notebook):
    path, nb = notebook
    assert set(nb.metadata) <= ALLOWED_NB_METADATA, f"{path.name}: notebook metadata {set(nb.metadata)}"
    assert nb.metadata.get("language_info", {"name": "python"}) == {"name": "python"}
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for i, c in enumerate(nb.cells):
        extra = set(c.metadata) - ALLOWED_CELL_METADATA
        assert not extra, f"{path.name} cell {i}: stray metadata {extra}"
        assert "injected-parameters" not in c.metadata.get("tags", [])


def test_checked_cells_and_exercises(notebook):
    path, nb = notebook
    checked = [c for c in nb.cells if c.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" in c.source]
    assert len(checked) >= 3, f"{path.name}: mark stable cells with # NBVAL_CHECK_OUTPUT"
    assert all(c.outputs for c in checked), f"{path.name}: a checked cell has no output to compare"
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert re.search(r"^#+ .*Exercises", md, re.M), f"{path.name}: no Exercises section"
    assert md.count("<details>") >= 3 and md.count("<details>") == md.count("</details>"), (
        f"{path.name}: each exercise needs a folded <details> solution"
    )
    assert re.search(r"^#+ .*References", md, re.M), f"{path.name}: no References section"


def test_main_job_runs_a_notebook_and_writes_a_report(tmp_path, monkeypatch):
    """course_utils.run_notebooks on a tiny two-cell notebook (fast), good and failing."""
    src = tmp_path / "nbs"
    src.mkdir()
    good = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE = "full"')
    params.metadata["tags"] = ["parameters"]
    good.cells = [params, nbformat.v4.new_code_cell("import course_utils as cu\nprint(cu.resolve_profile(PROFILE))")]
    good.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(good, src / "01_good.ipynb")
    bad = nbformat.v4.new_notebook(metadata=good.metadata)
    bad.cells = [params, nbformat.v4.new_code_cell("raise ValueError('boom')")]
    nbformat.write(bad, src / "02_bad.ipynb")
    (src / "scratch.ipynb").write_text(json.dumps({}))  # not a lecture: ignored
    out = tmp_path / "out"
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    proc = subprocess.run(
        [sys.executable, "-m", "course_utils.run_notebooks", "--notebooks", str(src), "--out", str(out),
         "--profile", "smoke"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one notebook failed
    report = (out / "smoke" / "report.md").read_text()
    assert "profile `smoke`" in report and "chosen with --profile" in report
    assert re.search(r"\| 01_good.ipynb \| ok \| \d+\.\d \|", report)
    assert re.search(r"\| 02_bad.ipynb \| FAILED \| \d+\.\d \| .*boom", report)
    assert "scratch" not in report
    executed = nbformat.read(out / "smoke" / "01_good.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0]["text"].strip() == "smoke"


def test_no_internal_jargon():
    # Students cannot know what "the seed text" is: name the material itself.
    places = [*NOTEBOOKS, *sorted((ROOT / "student").glob("*.ipynb")), ROOT / "README.md",
              *sorted((ROOT / "docs").glob("*.md"))]
    found = [p.relative_to(ROOT).as_posix() for p in places
             if re.search(r"\bseed[ -](texts?|loops?|MLP|GAN|VAE|code|models?)\b", p.read_text(), re.I)]
    assert not found, f"'seed text' (jargon) in {found}"
