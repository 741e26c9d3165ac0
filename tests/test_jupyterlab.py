"""Lecture 01 run as a student would: in JupyterLab, in a real (headless) browser.

Starts JupyterLab on localhost from this environment, opens the lecture in
Chromium, runs all cells through the Run menu, waits for the kernel to finish,
saves through the UI, and checks the saved notebook: every code cell ran and
none produced an error. A screenshot goes to artifacts/screenshots/.
"""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tests.browser import CHROMIUM_ARGS, free_port, require_chromium, screenshot_path

ROOT = Path(__file__).resolve().parent.parent
LECTURE = "01_generative_vs_discriminative.ipynb"
TOKEN = "course-test-token"


@pytest.fixture
def jupyterlab(tmp_path):
    nb = nbformat.read(ROOT / "notebooks" / LECTURE, as_version=4)
    for cell in nb.cells:  # a fresh copy, as a student opens it: no outputs yet
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, tmp_path / LECTURE)
    port = free_port()
    env = dict(os.environ, COURSE_PROFILE="smoke", JUPYTER_NO_CONFIG="1")
    env.pop("MPLBACKEND", None)  # the kernel uses the inline backend, as for a student
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}",
         "--ServerApp.allow_root=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text())
            time.sleep(0.5)
    yield base, tmp_path
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_lecture_runs_all_cells_in_jupyterlab(jupyterlab):
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    base, root = jupyterlab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/lab/tree/{LECTURE}?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        accept = page.locator(".jp-Dialog .jp-mod-accept")  # "Select Kernel": keep Python 3
        try:
            accept.wait_for(timeout=20_000)
            accept.click()
        except Exception:  # no dialog: the kernel started by itself
            pass
        idle = ".jp-Notebook-ExecutionIndicator[data-status='idle']"
        page.wait_for_selector(idle, state="attached", timeout=120_000)  # kernel started
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        # Running: some prompt shows [*]; done: the kernel is idle and no cell is queued.
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-InputPrompt')].some(p => /\\d/.test(p.textContent))",
            timeout=120_000)
        page.wait_for_function(
            "() => document.querySelector(\"" + idle + "\") !== null &&"
            " ![...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'))",
            timeout=600_000, polling=1000)
        page.keyboard.press("Control+s")
        page.wait_for_timeout(3000)
        page.screenshot(path=screenshot_path("jupyterlab_lecture01.png"))
        browser.close()

    nb = nbformat.read(root / LECTURE, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    not_run = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not not_run, f"cells that did not run in JupyterLab: {not_run}"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"error output in JupyterLab: {errors[0].ename}: {errors[0].evalue}"
    text = "".join(o.get("text", "") for c in code for o in c.outputs)
    assert "profile: smoke" in text  # the server's COURSE_PROFILE reached the kernel
