"""The course website builds, and a browser finds rendered math and a figure in it."""

import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser import CHROMIUM_ARGS, require_chromium, screenshot_path

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_site.py"), "--out", str(out)],
                   check=True, timeout=600)
    return out


def test_every_lecture_has_a_page(site):
    lectures = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    pages = sorted(p.stem for p in (site / "lectures").glob("*.html"))
    assert pages == lectures
    index = (site / "index.html").read_text()
    assert "Syllabus" in index
    assert all(f"lectures/{name}.html" in index for name in lectures)


def _lecture_page(site, number: str) -> str:
    return next((site / "lectures").glob(f"{number}_*.html")).name


def test_pages_start_with_the_title_and_hide_the_colab_setup(site):
    for page in sorted((site / "lectures").glob("*.html")):
        html = page.read_text()
        assert "COURSE_REPO" not in html, f"{page.name}: the Colab setup cell is on the page"
        body = html[html.index('<article'):]
        first_code, first_title = body.find('class="cell docutils container"'), body.find("<h1")
        assert first_title != -1, f"{page.name}: no title"
        assert first_code == -1 or first_title < first_code, f"{page.name}: code before the title"


def test_browser_sees_math_and_figures(site):
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    handler = partial(SimpleHTTPRequestHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    # lecture 01 (math, folded solutions), and a GAN and a VAE lecture (their figures)
    lectures = {n: _lecture_page(site, n) for n in ("01", "03", "05")}
    seen = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{base}/index.html")
            assert "Syllabus" in page.inner_text("body")
            page.screenshot(path=screenshot_path("site_index.png"))
            for number, lecture in lectures.items():
                page.goto(f"{base}/lectures/{lecture}")
                # MathJax (served from the site itself) turns TeX into laid-out spans.
                rendered = ("() => [...document.querySelectorAll('.MathJax')]"
                            ".filter(m => m.getBoundingClientRect().width > 0).length")
                try:
                    page.wait_for_function(f"({rendered})() >= 5", timeout=120_000)
                except Exception:  # fall through to the assertion, with a screenshot
                    pass
                seen[number] = {
                    "math": page.evaluate(rendered),
                    "figures": page.eval_on_selector_all(
                        "img", "imgs => imgs.filter(i => i.complete && i.naturalWidth > 100).length"),
                    "folded": page.eval_on_selector_all("details", "ds => ds.filter(d => !d.open).length"),
                }
                page.screenshot(path=screenshot_path(f"site_lecture_{number}.png"))
            browser.close()
    finally:
        server.shutdown()
    for number, lecture in lectures.items():
        found = seen[number]
        assert found["math"] >= 5, f"{lecture}: only {found['math']} rendered formulas"
        assert found["figures"] >= 3, f"{lecture}: only {found['figures']} figures rendered"
        assert found["folded"] >= 3, f"{lecture}: solutions should be folded"
