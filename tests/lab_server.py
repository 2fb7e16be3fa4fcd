"""A real JupyterLab 4 server for the tests, and a Chromium page driving it through Playwright.

`running_lab` starts `python -m jupyterlab` on 127.0.0.1 at a free port with a random token,
its root a temporary folder, every Jupyter folder (config, data, runtime, settings,
workspaces) a temporary one, and no network use (no extension manager, news or update
checks); it waits until the server answers, and shuts it down (kernels included) at the end.
Kernels come from $JUPYTER_PATH as the caller sets it (the test kernelspec).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page

START_TIMEOUT_S = 120.0
RUN_TIMEOUT_MS = 180_000


@dataclass
class Lab:
    """A running JupyterLab: where it listens, its token and its root folder."""

    url: str
    token: str
    root: Path

    def notebook_url(self, name: str) -> str:
        """The URL opening notebook `name` alone (a reset workspace), logged in by the token."""
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"

    def api(self, path: str, method: str = "GET") -> bytes:
        """A request to the server's REST API."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_lab(root: Path, home: Path, env: dict[str, str]) -> Iterator[Lab]:
    """JupyterLab serving `root`, its own folders under `home`, `env` added to its environment."""
    port, token = free_port(), secrets.token_hex(16)
    folders = {
        name: home / name.lower()
        for name in (
            "JUPYTER_CONFIG_DIR",
            "JUPYTER_DATA_DIR",
            "JUPYTER_RUNTIME_DIR",
            "JUPYTERLAB_SETTINGS_DIR",
            "JUPYTERLAB_WORKSPACES_DIR",
        )
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    news = folders["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.extension_manager=readonly",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = home / "jupyterlab.log"
    environment = {**os.environ, **{k: str(v) for k, v in folders.items()}, **env}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, root)
    try:
        _wait_until_up(lab, process, log)
        yield lab
    finally:
        _shut_down(lab, process)


def _wait_until_up(lab: Lab, process: subprocess.Popen, log: Path) -> None:
    """Return once the server answers /api/status; fail with its log if it exits or stalls."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited ({process.returncode}):\n{log.read_text()}")
        try:
            lab.api("/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"JupyterLab did not answer in {START_TIMEOUT_S:g} s:\n{log.read_text()}")


def _shut_down(lab: Lab, process: subprocess.Popen) -> None:
    """Stop the server and its kernels: the API's shutdown, else terminate, else kill."""
    with contextlib.suppress(OSError, urllib.error.URLError):
        lab.api("/api/shutdown", method="POST")
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def lab_page(browser: Browser, lab: Lab, notebook: str) -> Iterator[Page]:
    """A fresh Chromium context with `notebook` open in JupyterLab, its kernel idle.

    Only the server's own address may be loaded; anything else is aborted.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith((lab.url, "data:", "blob:"))
            else route.abort()
        ),
    )
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(lab.notebook_url(notebook))
        panel(page).locator(".jp-Cell").first.wait_for()
        # The status bar reads "<kernel> | Idle" once the kernel is started and connected.
        idle = re.compile(r"\|\s*Idle\s*$")
        page.locator(".jp-StatusBar-TextItem", has_text=idle).wait_for(timeout=RUN_TIMEOUT_MS)
        yield page
    finally:
        context.close()
    assert not errors, errors


def panel(page: Page) -> Locator:
    """The notebook panel shown (the only one open, in a reset workspace)."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")


def run_first_cell(page: Page) -> None:
    """Run the notebook's first code cell with Shift+Enter, as a user does."""
    panel(page).locator(".jp-Cell .jp-InputArea-editor").first.click()
    page.keyboard.press("Shift+Enter")
