"""Notebook 14's inspectors as a researcher uses them: JupyterLab + headless Chromium (Playwright).

Starts JupyterLab on 127.0.0.1 (random free port, random token) on a copy of notebook 14 prepared at smoke
settings, opens it in Debian's `chromium` driven by Playwright, runs all cells, then moves the flow inspector's
pair slider, level dropdown and direction toggle and clicks its image, asserting that the picture changes each
time, that the click moves the picked pixel, that no cell failed and that the browser console has no errors.
Screenshots of every state go to build/browser/ (kept after the run, to look at a failure). Prints the time from
Run All to a usable inspector.

Needs the `chromium` binary and the `playwright` package: missing either, the test fails under CI (CI=true) and
is skipped elsewhere, with the reason (both checked before JupyterLab starts). MCJEPA_CHROMIUM names the binaries
to look for on PATH (default "chromium chromium-browser").
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "browser"
NOTEBOOK = "14_inspectors"
SERVER_START_S = 240     # JupyterLab answering
RUN_ALL_S = 1200         # Run All until the three inspectors are shown (smoke training included)
REDRAW_S = 120           # one control change until the new picture is shown
CHROMIUM_NAMES = tuple(os.environ.get("MCJEPA_CHROMIUM", "chromium chromium-browser").split())

pytestmark = pytest.mark.browser


def _missing(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    _missing("no chromium binary on PATH (Debian: apt-get install -y chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_notebook(folder: Path) -> Path:
    """Notebook 14 with the smoke parameters, its runs and figures under `folder` (as `make test` prepares it)."""
    import papermill

    from mcjepa.reproduce import SMOKE, notebook_path

    target = folder / f"{NOTEBOOK}.ipynb"
    papermill.execute_notebook(str(notebook_path(NOTEBOOK)), str(target), prepare_only=True,
                               parameters={**SMOKE, "runs_dir": str(folder / "runs"),
                                           "figures_dir": str(folder / "figures")})
    return target


@pytest.fixture
def browser_tools():
    """(chromium path, playwright's sync_playwright), checked before anything starts."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install playwright; `make test` installs it)")
    return _chromium(), sync_playwright


@pytest.fixture
def jupyter_lab(browser_tools, tmp_path):
    """(base url, token, notebook folder) of a JupyterLab serving a prepared notebook 14; always killed."""
    folder = OUT / "notebook"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _prepare_notebook(folder)
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "settings"
    # every cell rendered (no windowing: what the test waits for is in the DOM), cell timings recorded, no news toast
    for plugin, values in (("notebook-extension/tracker", {"windowingMode": "none", "recordTiming": True}),
                           ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False})):
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "MPLBACKEND": "Agg"}
    log = open(OUT / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--ServerApp.port_retries=0",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import urllib.request

        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {server.returncode}: see {OUT / 'jupyterlab.log'}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"JupyterLab did not answer within {SERVER_START_S} s")
            time.sleep(0.5)
        yield url, token, folder
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its kernels (own session)
            server.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.wait(timeout=10)
        log.close()


CELL_TIMES_JS = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  const times = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    const t = cell.type === 'code' ? cell.getMetadata('execution') : null;
    if (t && t['iopub.execute_input'] && t['shell.execute_reply'])
      times.push([i, Date.parse(t['iopub.execute_input']) / 1000, Date.parse(t['shell.execute_reply']) / 1000,
                  cell.sharedModel.getSource().split('\\n').slice(-1)[0].slice(0, 50)]);
  }
  return times;
}"""

CELL_ERRORS_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.model.cells;
  const errors = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (const out of cell.outputs.toJSON()) {
      if (out.output_type === 'error') errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
    }
  }
  return errors;
}"""


def _label_row(scope, kind: str, label: str):
    """The ipywidgets control of class `kind` (e.g. 'widget-hslider') whose description is `label`."""
    return scope.locator(f".{kind}").filter(
        has=scope.page.locator("label.widget-label", has_text=re.compile(f"^{label}$"))
    )


def test_flow_inspector_in_jupyterlab(browser_tools, jupyter_lab):
    chromium, sync_playwright = browser_tools
    url, token, _ = jupyter_lab
    shots: list[Path] = []
    console_errors: list[str] = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(f"page error: {e}"))
            page.goto(f"{url}/lab/tree/{NOTEBOOK}.ipynb?token={token}", wait_until="domcontentloaded")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                   ".connectionStatus === 'connected'", timeout=120_000)
            started = time.monotonic()
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            flow_cell = page.locator(".jp-CodeCell").filter(has_text="flow_inspector.widget()")
            image = flow_cell.locator("img.widget-image")
            image.wait_for(state="attached", timeout=RUN_ALL_S * 1000)
            page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                                   timeout=REDRAW_S * 1000)
            usable = time.monotonic() - started
            print(f"\nRun All -> usable flow inspector: {usable:.1f} s (smoke settings)")
            # all cells done: the last inspector shown, the kernel idle, then no cell failed
            page.locator(".jp-CodeCell").filter(has_text="video_inspector.widget()").locator(
                "img.widget-image").wait_for(state="attached", timeout=RUN_ALL_S * 1000)
            page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                                   " === 'idle'", timeout=RUN_ALL_S * 1000)
            times = page.evaluate(CELL_TIMES_JS)
            print(f"Run All -> all cells done: {time.monotonic() - started:.1f} s; per cell (s):")
            for index, begin, end, last_line in times:
                print(f"  cell {index:2d} {end - begin:6.1f}  {last_line}")
            widget_done = [end for _, _, end, line in times if "flow_inspector.widget()" in line]
            if times and widget_done:  # the kernel's own clock: first cell started -> the widget cell replied
                print(
                    f"Run All -> flow inspector shown, by the kernel's timestamps: {widget_done[0] - times[0][1]:.1f} s"
                )
            assert page.evaluate(CELL_ERRORS_JS) == []
            image.scroll_into_view_if_needed()

            def snapshot(name: str, img=image) -> bytes:
                path = OUT / f"{name}.png"
                data = img.screenshot(path=str(path))
                shots.append(path)
                return data

            def changes(name: str, action, img=image) -> bytes:
                """Do `action`, wait for the image to be replaced, screenshot it; the picture must differ."""
                before_src, before = img.get_attribute("src"), snapshot(f"{name}_before", img)
                t0 = time.monotonic()
                action()
                page.wait_for_function("([img, src]) => img.getAttribute('src') !== src && img.complete",
                                       arg=[img.element_handle(), before_src], timeout=REDRAW_S * 1000)
                print(f"{name}: redrawn in {time.monotonic() - t0:.2f} s")
                after = snapshot(name, img)
                assert after != before, f"{name}: the picture did not change (see {OUT})"
                return after

            def readout(label: str) -> str:
                return _label_row(flow_cell, "widget-hslider", label).locator(".widget-readout").inner_text().strip()

            page.screenshot(path=str(OUT / "page_after_run_all.png"))
            snapshot("00_initial")
            x_before, y_before = readout("x"), readout("y")
            # the pair slider to its last pair (the Motorcycle pair, another size): x/y re-centred on it
            pair_handle = _label_row(flow_cell, "widget-hslider", "pair").locator(".noUi-handle")
            changes("01_pair_last", lambda: (pair_handle.focus(), pair_handle.press("End")))
            assert (readout("x"), readout("y")) != (x_before, y_before)
            changes("02_level_0", lambda: _label_row(flow_cell, "widget-dropdown", "level").locator("select")
                    .select_option(label="level 0"))
            changes("03_direction_bw", lambda: flow_cell.locator(".widget-toggle-button", has_text="bw").click())
            # a click on the first panel (the reference frame), a fifth from its left and two thirds down
            box = image.bounding_box()
            x_before = readout("x")
            changes("04_click", lambda: image.click(position={"x": box["width"] * 0.06, "y": box["height"] * 0.6}))
            assert readout("x") != x_before, "the click did not move the picked pixel"
            page.screenshot(path=str(OUT / "page_flow_end.png"))
            # the still-image inspector: no frame slider; picking a class redraws without resizing the picture
            still_cell = page.locator(".jp-CodeCell").filter(has_text="still_inspector.widget()")
            still_image = still_cell.locator("img.widget-image")
            still_image.scroll_into_view_if_needed()
            assert _label_row(still_cell, "widget-hslider", "frame").count() == 0
            size = still_image.bounding_box()
            changes("05_still_class", lambda: _label_row(still_cell, "widget-dropdown", "class").locator("select")
                    .select_option(index=2), still_image)
            after = still_image.bounding_box()
            assert (after["width"], after["height"]) == (size["width"], size["height"]), "the picture jumped"
            page.screenshot(path=str(OUT / "page_end.png"))
        finally:
            browser.close()
    assert console_errors == [], f"browser console errors: {console_errors}"
