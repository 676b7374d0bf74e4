"""JupyterLab in headless Chromium, for tests/test_browser.py: a server, a browser, and the
steps a student takes (open a notebook, run all cells, move every widget control).

The server is ``python -m jupyterlab`` of this interpreter on a free loopback port, with its own
token, settings (autosave off, every cell rendered), workspaces, runtime and data folders, all
under a temporary folder; it serves a folder the caller gives (a copy of the notebooks). It is
stopped by its PID, and the processes it started (its kernels) are killed if they outlive it.
The browser is the system's Chromium driven by its chromedriver through selenium (no browser
download). Every wait is bounded.
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
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WINDOW = (1366, 768)  # the page's CSS size: a laptop; the notebook's outputs are ~920 px wide
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
]
LAB_SETTINGS = {  # user settings of the JupyterLab front end, one file per plugin
    # Never write outputs back into the notebook (autosave is every 120 s by default).
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # Keep every cell in the page (the default windowing detaches cells out of view).
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # No news or update checks: the machine may be offline.
    "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
}


def find_browser() -> tuple[str | None, str | None, str]:
    """(chromium, chromedriver, why not) from $PATH; why-not is '' when both and selenium exist."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = []
    if chromium is None:
        missing.append("chromium")
    if driver is None:
        missing.append("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    why = ""
    if missing:
        why = (
            f"{' and '.join(missing)} not found: install Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver) and `pip install selenium` (.ci/run does)"
        )
    return chromium, driver, why


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something truthy; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(interval)


class LabServer:
    """``python -m jupyterlab`` serving ``root`` on 127.0.0.1; use as a context manager."""

    def __init__(self, root: Path, work: Path, env: dict[str, str] | None = None) -> None:
        self.root, self.work = Path(root), Path(work)
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.work / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None
        self.extra_env = dict(env or {})
        self.leftovers: list[str] = []  # processes that had to be killed after the server stopped

    # --- REST API -----------------------------------------------------------------------------
    def api(self, path: str, method: str = "GET", timeout: float = 10.0) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def api_retry(self, path: str, method: str = "GET", timeout: float = 30.0) -> Any:
        """The API call, retried while the server answers 5xx (e.g. a kernel still starting)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.api(path, method)
            except urllib.error.HTTPError as err:
                if err.code < 500 or time.monotonic() > deadline:
                    raise
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    # --- start and stop -----------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        settings = self.work / "lab-settings"
        for plugin, values in LAB_SETTINGS.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        for name in ("workspaces", "runtime", "config", "data", "ipython"):
            (self.work / name).mkdir(exist_ok=True)
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # the kernel draws with its inline backend, as for a student
        env.update(
            JUPYTER_CONFIG_DIR=str(self.work / "config"),  # no user configuration
            JUPYTER_DATA_DIR=str(self.work / "data"),  # no user kernelspecs: python3 is this one
            JUPYTER_RUNTIME_DIR=str(self.work / "runtime"),
            IPYTHONDIR=str(self.work / "ipython"),
            JUPYTER_PLATFORM_DIRS="1",
        )
        env.update(self.extra_env)
        command = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
            f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root}",
            "--ServerApp.open_browser=False", "--ServerApp.disable_check_xsrf=False",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={self.work / 'workspaces'}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]  # fmt: skip
        log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self._log = log
        self.proc = subprocess.Popen(
            command, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyterlab exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                return self.api("/api/status", timeout=5) is not None
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                return False

        try:
            wait_for(ready, timeout, "JupyterLab to answer /api/status")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server by its PID (kernels shut down with it), then kill what outlived it."""
        import psutil

        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            children = []
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # jupyter_server shuts its kernels down
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for child in children:
            try:
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    self.leftovers.append(f"{child.pid} {' '.join(child.cmdline())[:120]}")
                    child.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(children, timeout=10)
        self._log.close()


def chrome(chromium: str, chromedriver: str, profile: Path, log_path: Path):
    """Headless Chromium at :data:`WINDOW` with a new empty profile, capturing the console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=chromedriver, log_output=str(log_path))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)
    set_page_size(driver, *WINDOW)
    return driver


def set_page_size(driver, width: int, height: int) -> None:
    """Make the page itself ``width`` x ``height`` CSS pixels (a window size counts its frame)."""
    inner_w, inner_h = driver.execute_script("return [window.innerWidth, window.innerHeight];")
    outer = driver.get_window_size()
    driver.set_window_size(outer["width"] + width - inner_w, outer["height"] + height - inner_h)


# --- JupyterLab through its exposed application object (window.jupyterapp) -------------------

_PANEL = """
const app = window.jupyterapp;
if (!app || !app.shell) return null;
const panel = app.shell.currentWidget;
if (!panel || !panel.context || panel.context.path !== arguments[0]) return null;
"""

_STATE = (
    _PANEL
    + """
const nb = panel.content;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = nb.widgets.map((cell, i) => {
  const prompt = cell.node.querySelector('.jp-InputArea-prompt');
  const out = {index: i, type: cell.model.type, prompt: prompt ? prompt.textContent.trim() : ''};
  if (cell.model.type === 'code') {
    out.source = cell.model.sharedModel.getSource();
    out.count = cell.model.executionCount;
    out.outputs = cell.model.outputs.toJSON();
  }
  return out;
});
return {kernel: kernel ? kernel.status : null,
        kernelId: kernel ? kernel.id : null,
        sessionId: panel.sessionContext.session ? panel.sessionContext.session.id : null,
        dirty: panel.context.model.dirty, cells: cells};
"""
)


@dataclass
class NotebookRun:
    """What the browser showed for one notebook: its cells' outputs and the widgets' updates."""

    name: str
    seconds_open: float = 0.0
    seconds_run: float = 0.0
    cells: list[dict] = field(default_factory=list)
    updates: list[tuple[int, str, float]] = field(default_factory=list)  # widget, control, s
    scales: list[tuple[int, int, int]] = field(default_factory=list)  # widget, shown, natural px
    problems: list[str] = field(default_factory=list)


def notebook_state(driver, name: str) -> dict | None:
    return driver.execute_script(_STATE, name)


def open_and_run(driver, server: LabServer, name: str, timeout: float) -> NotebookRun:
    """Open ``name`` in JupyterLab, wait for its kernel, run all cells, wait until all ran."""
    run = NotebookRun(name)
    t0 = time.monotonic()
    driver.get(f"{server.url}/lab/tree/{name}?token={server.token}")
    wait_for(
        lambda: (s := notebook_state(driver, name)) and s["kernel"] == "idle",
        120,
        f"{name} to open with an idle kernel",
    )
    run.seconds_open = time.monotonic() - t0
    t0 = time.monotonic()
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")

    def finished() -> dict | None:
        state = notebook_state(driver, name)
        if state is None or state["kernel"] not in ("idle", "dead", "unknown"):
            return None
        if any(c.get("prompt") == "[*]:" for c in state["cells"]):
            return None
        return state

    # Idle with no cell queued, seen twice in a row (a queue can look idle between two cells).
    deadline = time.monotonic() + timeout
    state = None
    while True:
        state = wait_for(finished, max(1.0, deadline - time.monotonic()), f"{name} to run")
        time.sleep(1.0)
        again = finished()
        if again is not None and again["cells"] == state["cells"]:
            state = again
            break
    run.seconds_run = time.monotonic() - t0
    run.cells = state["cells"]
    if state["kernel"] != "idle":
        run.problems.append(f"kernel is {state['kernel']} after running all cells")
    for cell in run.cells:
        if cell["type"] != "code":
            continue
        if cell["source"].strip() and cell["count"] is None:
            run.problems.append(f"cell {cell['index']} did not run")
        for out in cell["outputs"]:
            if out.get("output_type") == "error":
                run.problems.append(
                    f"cell {cell['index']} raised {out.get('ename')}: {out.get('evalue')}"
                )
            elif out.get("name") == "stderr" and re.search(
                r"Traceback|Error\b|Exception\b", "".join(out.get("text", ""))
            ):
                run.problems.append(f"cell {cell['index']} wrote an error to stderr: "
                                    f"{''.join(out['text'])[-300:]}")  # fmt: skip
    return run


# --- widgets in the page ---------------------------------------------------------------------

# A lesson widget (prunegrad_lite.course.LessonWidget) is a VBox whose children are a title, a
# box of controls, a message and an Image; top-level ones sit in an output area.
LESSON_WIDGETS = ".jp-OutputArea-output .widget-vbox:has(> .widget-hbox):has(> img.widget-image)"
WIDGET_ERRORS = re.compile(
    r"Error displaying widget|Error rendering|model not found|Loading widget"
)


def lesson_widgets(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, LESSON_WIDGETS)


def widget_text_problems(driver) -> list[str]:
    """Widget outputs that failed to render (their text says so)."""
    from selenium.webdriver.common.by import By

    texts = [
        e.text
        for e in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
        if WIDGET_ERRORS.search(e.text or "")
    ]
    return [f"a widget output shows {t[:200]!r}" for t in texts]


def image_state(driver, widget) -> dict:
    return driver.execute_script(
        """const img = arguments[0].querySelector(':scope > img.widget-image');
        const r = img.getBoundingClientRect();
        return {src: img.src, natural: img.naturalWidth, width: Math.round(r.width),
                height: Math.round(r.height), complete: img.complete,
                display: getComputedStyle(img).display};""",
        widget,
    )


_LAYOUT = """
const w = arguments[0];
const out = w.closest('.jp-OutputArea-output');
const img = w.querySelector(':scope > img.widget-image');
const problems = [];
const wide = e => e.scrollWidth > e.clientWidth + 1;
if (img && img.naturalWidth > 0 && getComputedStyle(img).display !== 'none') {
  const shown = Math.round(img.getBoundingClientRect().width);
  if (img.naturalWidth > out.clientWidth)
    problems.push(`its figure is ${img.naturalWidth} px wide, wider than the output ` +
                  `(${out.clientWidth} px): shown shrunk, its text smaller`);
  else if (shown > img.naturalWidth + 1)
    problems.push(`its ${img.naturalWidth} px figure is stretched to ${shown} px`);
}
for (let e = w; e && e !== out.parentElement; e = e.parentElement)
  if (wide(e)) problems.push(`${e.className.split(' ').pop()} scrolls sideways ` +
                             `(${e.scrollWidth} px of content in ${e.clientWidth})`);
for (const e of w.querySelectorAll(
    '.widget-label, .widget-toggle-button, .widget-readout, .widget-html-content'))
  if (e.textContent.trim() && wide(e))
    problems.push(`the text '${e.textContent.trim()}' is cut (${e.scrollWidth} px in ` +
                  `${e.clientWidth})`);
const ctx = document.createElement('canvas').getContext('2d');
for (const s of w.querySelectorAll('select:not([multiple])')) {
  ctx.font = getComputedStyle(s).font;
  const text = s.options[s.selectedIndex] ? s.options[s.selectedIndex].text : '';
  const room = s.clientWidth - 24;  // the arrow and the padding
  if (ctx.measureText(text).width > room)
    problems.push(`the choice '${text}' is cut (${Math.round(ctx.measureText(text).width)} px ` +
                  `in ${room})`);
}
return problems;
"""


def layout_problems(driver, widget) -> list[str]:
    """What a student would see wrong in one lesson widget's layout: a figure wider than the
    output (shrunk, small text) or stretched beyond its size, a box that scrolls sideways, a
    label, button, readout or dropdown choice whose text is cut."""
    return driver.execute_script(_LAYOUT, widget)


def wide_outputs(driver) -> list[str]:
    """Outputs that scroll sideways (content wider than the notebook's output area)."""
    return driver.execute_script(
        """const found = [];
        document.querySelectorAll('.jp-Notebook .jp-Cell').forEach((cell, i) => {
          for (const o of cell.querySelectorAll('.jp-OutputArea-output'))
            if (o.scrollWidth > o.clientWidth + 1)
              found.push(`cell ${i}'s output scrolls sideways (${o.scrollWidth} px of ` +
                         `content in ${o.clientWidth}): '${o.textContent.trim().slice(0, 60)}'`);
        });
        return found;"""
    )


def controls(widget) -> list:
    from selenium.webdriver.common.by import By

    return widget.find_elements(By.CSS_SELECTOR, ":scope > .widget-hbox > .widget-inline-hbox, "
                                ":scope > .widget-hbox > .widget-toggle-buttons")  # fmt: skip


def control_label(driver, control) -> str:
    return driver.execute_script(
        "const l = arguments[0].querySelector('.widget-label');"
        "return (l && l.textContent.trim()) || 'buttons';",
        control,
    )


def move(driver, control) -> str | None:
    """Change one control's value the way a student would; returns what was done, or None
    when the control has a single value (e.g. an image list holding one image in smoke mode)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    classes = control.get_attribute("class") or ""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", control)
    if "widget-slider" in classes:
        handle = control.find_element(By.CSS_SELECTOR, ".noUi-handle")
        readout = control.find_element(By.CSS_SELECTOR, ".widget-readout")
        if handle.get_attribute("aria-valuemin") == handle.get_attribute("aria-valuemax"):
            return None
        before = readout.text
        handle.click()
        handle.send_keys(Keys.ARROW_RIGHT)
        try:
            wait_for(lambda: readout.text != before, 5, "the slider to move", 0.1)
        except TimeoutError:  # at its maximum: move left instead
            handle.send_keys(Keys.ARROW_LEFT)
            wait_for(lambda: readout.text != before, 5, "the slider to move left", 0.1)
        return f"slider {before} -> {readout.text}"
    if "widget-toggle-buttons" in classes:
        buttons = control.find_elements(By.CSS_SELECTOR, "button")
        if len(buttons) < 2:
            return None
        other = next(b for b in buttons if "mod-active" not in (b.get_attribute("class") or ""))
        other.click()
        return f"toggle -> {other.text}"
    found = control.find_elements(By.CSS_SELECTOR, "select")
    if not found:  # e.g. a Checkbox or RadioButtons: add a branch above for it
        raise ValueError(f"the test does not know how to move a control of class {classes!r}")
    select = Select(found[0])
    if len(select.options) < 2:
        return None
    if select.is_multiple:
        chosen = [o for o in select.options if o.is_selected()]
        if len(chosen) > 1:
            select.deselect_by_visible_text(chosen[-1].text)
            return f"deselect {chosen[-1].text}"
        other = next(o for o in select.options if not o.is_selected())
        select.select_by_visible_text(other.text)
        return f"select {other.text}"
    options = select.options
    current = next(i for i, o in enumerate(options) if o.is_selected())
    target = (current + 1) % len(options)
    select.select_by_index(target)
    return f"dropdown -> {options[target].text}"


def close_notebook(driver, name: str) -> None:
    """Close the notebook's tab without saving (its outputs are never written)."""
    driver.execute_script(
        _PANEL + "panel.context.model.dirty = false; panel.dispose(); return true;", name
    )


def console_problems(driver, ignore: re.Pattern | None = None) -> list[str]:
    """SEVERE entries of the browser console since the last call (selenium drains the log)."""
    found = []
    for entry in driver.get_log("browser"):
        if entry.get("level") != "SEVERE":
            continue
        message = entry.get("message", "")
        if ignore is not None and ignore.search(message):
            continue
        found.append(f"browser console: {message[:300]}")
    return found
