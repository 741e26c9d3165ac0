"""The two install routes (pip with pyproject.toml, conda with environment.yml) must agree."""

import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"torch": "pytorch"}  # conda-forge spells these differently


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_the_pyproject_dependencies():
    project = _pyproject()["project"]
    pip_deps = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = dict(_split(d) for d in env["dependencies"] if isinstance(d, str))
    expected = {CONDA_NAMES.get(name, name): spec for name, spec in pip_deps.items()}
    for name, spec in expected.items():
        assert name in conda, f"environment.yml lacks {name}{spec} (pyproject.toml has it)"
        assert conda[name] == spec, f"{name}: pyproject.toml says {spec!r}, environment.yml says {conda[name]!r}"
    extra = set(conda) - set(expected) - {"python", "pip"}
    assert not extra, f"environment.yml has packages pyproject.toml lacks: {sorted(extra)}"
    assert conda["python"] == project["requires-python"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "--editable ." in pip_section


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/run_course.sh" in readme
    assert "bash scripts/run_tests.sh" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/run_tests.sh" in ci
