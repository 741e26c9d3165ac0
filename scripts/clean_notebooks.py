"""Strip what a run leaves in a notebook that should not be committed.

    papermill notebooks/01_x.ipynb notebooks/01_x.ipynb     # a full-profile run, in place
    python scripts/clean_notebooks.py notebooks/01_x.ipynb  # then clean it

Keeps outputs and execution counts (the committed notebook shows a real run);
removes papermill's and nbclient's metadata, widget state, the injected-parameters
cell, and reduces notebook metadata to the kernelspec and the language name.
tests/test_notebooks.py checks the result.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def clean(path: Path) -> bool:
    """Clean one notebook in place; return True if it changed."""
    before = path.read_text()
    nb = nbformat.reads(before, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    nb.metadata = nbformat.from_dict(metadata)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        cell.metadata = nbformat.from_dict({"tags": tags} if tags else {})
        if cell.cell_type == "code":
            for out in cell.outputs:
                out.get("metadata", {}).pop("papermill", None)
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after)
    return after != before


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("notebooks").glob("*.ipynb"))
    for p in paths:
        print(f"{p}: {'cleaned' if clean(p) else 'already clean'}")
