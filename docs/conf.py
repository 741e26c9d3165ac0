"""Sphinx + MyST-NB configuration for the course website (built by scripts/build_site.sh).

The lectures are rendered from their committed outputs (nothing is executed),
math is rendered by a local copy of MathJax (the site works offline), and the
folded <details> solutions stay folded.
"""

import shutil
from pathlib import Path

import jupyter_server_mathjax

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

project = "Generative Models, from the math to working code"
author = "the course authors"
copyright = "the course authors (code MIT; MNIST CC BY-SA 3.0)"

extensions = ["myst_nb"]
myst_enable_extensions = ["dollarmath", "amsmath", "html_image"]
nb_execution_mode = "off"  # show the committed full-profile outputs
nb_merge_streams = True
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]

html_theme = "sphinx_book_theme"
html_title = "Generative Models"
html_theme_options = {"show_toc_level": 2}
html_static_path = ["_static"]

# MathJax 2.7 from the jupyter-server-mathjax wheel: no CDN, so math renders offline.
_mathjax_src = Path(jupyter_server_mathjax.__file__).parent / "static"
_mathjax_dst = HERE / "_static" / "mathjax"
if not (_mathjax_dst / "MathJax.js").exists():
    shutil.copytree(_mathjax_src, _mathjax_dst, dirs_exist_ok=True)
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                "processRefs": False, "processEnvironments": False,
                # MyST-NB marks notebook sections "ignore" and math spans "math"
                "ignoreClass": "tex2jax_ignore|mathjax_ignore",
                "processClass": "tex2jax_process|mathjax_process|math|output_area"},
    # the wheel ships the STIX-Web fonts only (as Jupyter's classic notebook uses them)
    "HTML-CSS": {"availableFonts": [], "webFont": "STIX-Web", "imageFont": None},
    "SVG": {"font": "STIX-Web"},
}
