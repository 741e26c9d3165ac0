"""The student copies in student/ (scripts/student_copies.py): in sync, no outputs, no solutions."""

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import colab_cells  # noqa: E402
import student_copies  # noqa: E402

NOTEBOOKS = colab_cells.lecture_notebooks()
# "**Exercise 1 (...)**", "**1. Title.**" or "1. **Title.**": the three styles the lectures use
PROMPT = re.compile(r"^(?:\*\*Exercise \d+\b|\*\*\d+\. |\d+\. \*\*)", re.M)


def _markdown(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _exercises(nb) -> str:
    """The markdown of the Exercises section (up to the next heading of level 1 or 2)."""
    md = _markdown(nb)
    start = re.search(r"^#+ .*Exercises.*$", md, re.M)
    assert start, "no Exercises section"
    end = re.compile(r"^##? ", re.M).search(md, start.end())
    return md[start.end(): end.start() if end else len(md)]


def test_student_copies_exist_and_are_in_sync():
    assert NOTEBOOKS
    found = student_copies.check()
    assert not found, f"run `python scripts/student_copies.py`: {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_student_copy_has_the_prompts_but_no_solutions_or_outputs(path):
    teacher = nbformat.read(path, as_version=4)
    student = nbformat.read(ROOT / "student" / path.name, as_version=4)
    md_teacher, md_student = _markdown(teacher), _markdown(student)
    assert "<details" not in md_student and "</details>" not in md_student
    code = [c for c in student.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name}: outputs left"
    n_prompts = len(PROMPT.findall(_exercises(teacher)))
    assert n_prompts >= 3, f"{path.name}: exercise prompts not recognised"
    assert len(PROMPT.findall(_exercises(student))) == n_prompts
    assert md_teacher.count("<details>") == n_prompts  # one folded solution per exercise
    assert md_student.count(student_copies.REMOVED) == n_prompts
    # the code a student runs is the instructor's, cell for cell
    assert [c.source for c in code] == [c.source for c in teacher.cells if c.cell_type == "code"]
    assert student.metadata == teacher.metadata
    assert f"/blob/{colab_cells.project_info()[1]}/student/{path.name})" in student.cells[1].source


def test_strip_solutions_on_a_hand_made_notebook():
    prompt = "**Exercise 1.** Compute $1 + 1$.\n\n"
    solution = "<details><summary>Solution</summary>\n\n```python\nprint(1 + 1)\n```\n\nTwo.\n</details>"
    md = nbformat.v4.new_markdown_cell(prompt + solution + "\n\n**Exercise 2.** More.\n\n" + solution)
    code = nbformat.v4.new_code_cell("x = 1\nx", execution_count=3, outputs=[
        nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=3)])
    tagged = nbformat.v4.new_code_cell("print('the answer')", execution_count=4)
    tagged.metadata["tags"] = ["solution"]
    nb = nbformat.v4.new_notebook(cells=[md, code, tagged])
    before = nbformat.writes(nb)

    out = student_copies.student_notebook(nb)

    assert nbformat.writes(nb) == before  # the instructor notebook is not modified
    removed = student_copies.REMOVED
    assert out.cells[0].source == prompt + removed + "\n\n**Exercise 2.** More.\n\n" + removed
    assert out.cells[1].source == "x = 1\nx"
    assert out.cells[1].outputs == [] and out.cells[1].execution_count is None
    assert out.cells[2].cell_type == "markdown" and out.cells[2].source == removed
    nbformat.validate(out)
    assert student_copies.strip_solutions("no solution here") == ("no solution here", 0)


def test_student_folder_is_not_linted_collected_or_published():
    pyproject = colab_cells.tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "student" in pyproject["tool"]["ruff"]["extend-exclude"]  # generated: linted in notebooks/
    assert pyproject["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]
    run_tests = (ROOT / "scripts" / "run_tests.sh").read_text()
    assert "student" not in run_tests and " tests notebooks " in run_tests  # nbval: notebooks/ only
    build_site = (ROOT / "scripts" / "build_site.py").read_text()
    assert "student" not in build_site and '(ROOT / "notebooks").glob' in build_site
