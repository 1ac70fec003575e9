"""End to end in a real browser: the notebooks as a reader sees them in JupyterLab.

nbval runs each notebook in a kernel and compares outputs; it never renders a page. This test starts
`jupyter lab` on 127.0.0.1 (a free port, a random token, temporary config/data/runtime/settings/
workspace folders, so nothing of the user's is read or written), opens copies of notebooks 10 and 01
in headless Chromium (driven by Playwright; the system's Chromium, never a downloaded one), runs all
cells from the menu and checks what the page shows:
- no cell shows an error or a traceback;
- notebook 10's sliders render as ipywidgets, not as text;
- "Run all" leaves the explorer at its starting values (seed 0, psi 1, directions 0);
- moving its seed slider (keyboard, as a reader would) changes the picture.

Screenshots are kept: under pytest's tmp dir, and copied to $VITGAN_ARTIFACTS when it is set.
The test skips only when Playwright or Chromium is missing; VITGAN_REQUIRE_BROWSER=1 (set by .ci/run)
turns that skip into a failure. Chromium is found as $VITGAN_CHROMIUM, or `chromium`,
`chromium-browser`, `google-chrome` on PATH (Debian/Ubuntu: `apt-get install chromium`).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SERVER_START_S = 120          # a busy 2-core machine: generous everywhere
RUN_ALL_S = 420
STEP_MS = 60_000


def _missing(reason: str):
    if os.environ.get("VITGAN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (VITGAN_REQUIRE_BROWSER=1 forbids skipping the browser test)")
    pytest.skip(reason)


def _chromium() -> str:
    candidates = [os.environ.get("VITGAN_CHROMIUM", "")]
    candidates += [shutil.which(name) or "" for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    _missing("no Chromium found: install it (Debian/Ubuntu: apt-get install chromium) or set VITGAN_CHROMIUM "
             "to a Chromium/Chrome executable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _without_outputs(src: Path, dst: Path) -> None:
    """Copy a notebook with its outputs and execution counts removed: all the page shows comes from this run."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, request):
    """(folder, list of saved files): the screenshots, listed on the terminal at the end and copied to
    $VITGAN_ARTIFACTS when set (pytest keeps only its last few tmp dirs)."""
    folder = tmp_path_factory.mktemp("browser_screenshots")
    saved: list[Path] = []
    yield folder, saved
    extra = os.environ.get("VITGAN_ARTIFACTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        saved += [Path(shutil.copy2(p, extra)) for p in list(saved)]
    if saved:
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print("\nbrowser test screenshots:\n" + "\n".join(f"  {p}" for p in saved))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on loopback serving copies of the notebooks: (base url, token)."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        _missing("jupyterlab is not installed (pip install -e '.[dev]')")
    home = tmp_path_factory.mktemp("jupyter")
    served = home / "notebooks"
    served.mkdir()
    for name in ("01_patches.ipynb", "10_latent_sliders.ipynb"):
        _without_outputs(NOTEBOOKS / name, served / name)
    shutil.copytree(NOTEBOOKS / "assets", served / "assets")
    settings = home / "settings"
    for plugin, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},           # every cell in the DOM
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    dirs = {name: home / name.lower() for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                                                   "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR")}
    for path in dirs.values():
        path.mkdir()
    env = dict(os.environ, **{k: str(v) for k, v in dirs.items()}, JUPYTERLAB_SETTINGS_DIR=str(settings),
               VITGAN_FAST="1", TQDM_DISABLE="1", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    port, token = _free_port(), secrets.token_hex(16)
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}",
         f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={dirs['JUPYTERLAB_WORKSPACES_DIR']}",
         "--ServerApp.terminals_enabled=False"] + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        cwd=served, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited ({server.returncode}):\n{(home / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer in {SERVER_START_S} s:\n{(home / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        try:   # a clean shutdown also stops the kernels it started
            with urllib.request.urlopen(urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST"), timeout=10):
                pass
            server.wait(timeout=30)
        except (urllib.error.URLError, OSError, subprocess.TimeoutExpired):
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[dev]'; no browser download is needed)")
    executable = _chromium()
    with sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=executable, headless=True)
        except Exception as exc:   # noqa: BLE001 -- a browser that will not start is a missing browser
            _missing(f"Chromium at {executable} did not start: {exc}")
        yield chromium
        chromium.close()


PROGRESS = """() => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    if (!panel) return null;
    const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim());
    const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
    const kernelName = panel.querySelector('.jp-Toolbar-kernelName');
    return {cells: prompts.length, done: prompts.filter(t => /^\\[\\d+\\]:$/.test(t)).length,
            busy: prompts.filter(t => t.includes('*')).length,
            failed: panel.querySelectorAll('[data-mime-type="application/vnd.jupyter.error"]').length,
            kernel: indicator ? indicator.getAttribute('data-status') : 'unknown',
            kernelName: kernelName ? kernelName.textContent.trim() : ''};
}"""


def _wait(page, artifacts, name: str, ready, what: str, seconds: float) -> dict:
    """Poll the notebook's progress until ready(progress); on timeout keep a screenshot and say where it stood."""
    (folder, saved), deadline, progress = artifacts, time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        progress = page.evaluate(PROGRESS)
        if progress and ready(progress):
            return progress
        dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
        if dialog.count():   # JupyterLab asks when cells are run before the kernel is up; take its default
            dialog.locator(".jp-mod-accept").first.click()
        page.wait_for_timeout(1000)
    shot = folder / f"{Path(name).stem}_timeout.png"
    page.screenshot(path=str(shot))
    saved.append(shot)
    pytest.fail(f"{name}: {what} not reached in {seconds:.0f} s; last progress {progress}; screenshot {shot}")


def _run_all(browser, lab, artifacts, name: str):
    """Open a notebook in its own workspace, wait for an idle kernel, run all cells from the menu and wait until
    every code cell has run (or one failed and the rest were cancelled)."""
    base, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(STEP_MS)
    page.goto(f"{base}/lab/workspaces/{Path(name).stem}/tree/{name}?token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell")
    _wait(page, artifacts, name, lambda p: p["kernel"] == "idle" and p["kernelName"] not in ("", "No Kernel"),
          "a started, idle kernel", SERVER_START_S)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    started = time.monotonic()
    _wait(page, artifacts, name, lambda p: p["busy"] or p["done"], "the start of the run", STEP_MS / 1000)
    state = _wait(page, artifacts, name, lambda p: p["kernel"] == "idle" and (p["done"] == p["cells"] or (p["failed"] and not p["busy"])),
                  "the end of the run", RUN_ALL_S)
    state["seconds"] = round(time.monotonic() - started)
    return page, state


def _check_no_errors(page, state: dict, artifacts, stem: str) -> None:
    """No cell shows an error output, or a traceback on stderr, and every code cell ran."""
    errors = page.evaluate("""() => {
        const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
        const out = [...panel.querySelectorAll('[data-mime-type="application/vnd.jupyter.error"]')].map(o => o.textContent);
        for (const o of panel.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]'))
            if (o.textContent.includes('Traceback')) out.push(o.textContent);
        return out.map(t => t.slice(0, 2000));
    }""")
    if errors or state["done"] != state["cells"]:
        folder, saved = artifacts
        _save(page, folder, saved, f"{stem}_errors.png")
    assert not errors, "cells show errors:\n" + "\n---\n".join(errors)
    assert state["done"] == state["cells"], f"not every code cell ran: {state}"


def _save(page_or_locator, folder: Path, saved: list, name: str) -> bytes:
    path = folder / name
    data = page_or_locator.screenshot(path=str(path))
    saved.append(path)
    return data


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))                # (H, W, 3)


def test_notebook_10_explorer_works_in_the_browser(browser, lab, artifacts):
    folder, saved = artifacts
    page, state = _run_all(browser, lab, artifacts, "10_latent_sliders.ipynb")
    try:
        print(f"notebook 10: {state}")
        _check_no_errors(page, state, artifacts, "nb10")

        # the explorer's cell: the one whose output holds the sliders, rendered as widgets (not as text)
        explorer = page.locator(".jp-CodeCell", has=page.locator(".jp-Cell-outputArea .widget-slider")).first
        explorer.scroll_into_view_if_needed()
        outputs = explorer.locator(".jp-Cell-outputArea")
        sliders = outputs.locator(".widget-slider")
        assert sliders.count() == 6, f"{sliders.count()} sliders rendered"     # seed, truncation, 4 directions
        picture = outputs.locator("img.widget-image").first
        picture.wait_for(state="visible")
        _save(page, folder, saved, "nb10_page_after_run_all.png")

        # "Run all" leaves the explorer at its starting values (the test cell drives a second instance)
        readouts = [r.strip() for r in outputs.locator(".widget-slider .widget-readout").all_inner_texts()]
        assert readouts == ["0", "1.00", "0.00", "0.00", "0.00", "0.00"], readouts
        seed = sliders.first
        before_src = picture.get_attribute("src")
        before = _save(outputs, folder, saved, "nb10_explorer_before.png")
        before_picture = picture.screenshot()

        handle = seed.locator(".noUi-handle, .ui-slider-handle").first        # ipywidgets 8 (noUiSlider) or 7 (jQuery UI)
        handle.focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        page.wait_for_function("s => s.querySelector('.widget-readout').textContent.trim() !== '0'",
                               arg=seed.element_handle())
        page.wait_for_function("([img, src]) => img.getAttribute('src') !== src",
                               arg=[picture.element_handle(), before_src])
        page.wait_for_timeout(500)                                            # the new image decoded and painted
        after = _save(outputs, folder, saved, "nb10_explorer_after.png")
        after_picture = picture.screenshot()
        print("seed slider now at", seed.locator(".widget-readout").inner_text())

        assert before != after
        a, b = _pixels(before_picture), _pixels(after_picture)
        assert a.shape == b.shape
        changed = (a != b).any(axis=-1).mean()                                # share of pixels that differ
        print(f"picture pixels changed by the seed slider: {changed:.0%}")
        assert changed > 0.2, f"moving the seed slider changed only {changed:.1%} of the picture's pixels"
    finally:
        page.close()


def test_notebook_01_runs_in_the_browser(browser, lab, artifacts):
    folder, saved = artifacts
    page, state = _run_all(browser, lab, artifacts, "01_patches.ipynb")
    try:
        print(f"notebook 01: {state}")
        _save(page, folder, saved, "nb01_page_after_run_all.png")
        _check_no_errors(page, state, artifacts, "nb01")
    finally:
        page.close()
