"""Just enough of the Chrome DevTools protocol to load a page headless and watch its console.

Headless Chromium is started with a fresh profile on a free debugging port; one websocket to the
page target carries the commands and the console/log/network events.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--disable-dev-shm-usage", "--remote-debugging-port=0")


def find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name) if not os.path.isabs(name) else (name if os.access(name, os.X_OK) else None)
        if path:
            return path
    return None


class PageRun:
    """What loading one page produced: console errors, requests, evaluated values, a screenshot."""

    def __init__(self) -> None:
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self.value = None
        self.screenshot: bytes = b""


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 900, timeout: float = 30.0):
    """Headless Chromium with a fresh profile; yields the websocket URL of its page target."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium binary found (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="rekfeedback-chromium-")
    proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield _page_ws(_devtools_port(proc, timeout), timeout)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


class DevTools:
    """Commands to one page over its websocket; every event goes to `on_event(method, params)`."""

    def __init__(self, ws, on_event=None) -> None:
        self._ws, self._on_event = ws, on_event
        self._ids = iter(range(1, 1_000_000))
        self._pending: dict[int, asyncio.Future] = {}

    async def read(self) -> None:
        async for raw in self._ws:
            msg = json.loads(raw)
            if msg.get("id") in self._pending:
                self._pending.pop(msg["id"]).set_result(msg)
            elif "method" in msg and self._on_event is not None:
                self._on_event(msg["method"], msg.get("params", {}))

    async def call(self, method: str, **params) -> dict:
        i = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[i] = fut
        await self._ws.send(json.dumps({"id": i, "method": method, "params": params}))
        msg = await fut
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg.get("result", {})

    async def evaluate(self, expression: str):
        res = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return res.get("result", {}).get("value")

    async def screenshot(self, **params) -> bytes:
        return base64.b64decode((await self.call("Page.captureScreenshot", format="png", **params))["data"])


@contextlib.asynccontextmanager
async def devtools(ws_url: str, on_event=None):
    """A DevTools session on the page, reading in the background while the caller sends commands."""
    from websockets.asyncio.client import connect

    async with connect(ws_url, max_size=64 * 1024 * 1024) as ws:
        page = DevTools(ws, on_event)
        task = asyncio.create_task(page.read())
        try:
            yield page
        finally:
            task.cancel()


def load_page(url: str, *, expression: str, width: int = 1200, timeout: float = 40.0) -> PageRun:
    """Open `url` in headless Chromium, evaluate `expression` after load, take a full-page screenshot."""
    with chromium(width, 900, timeout) as ws_url:
        return asyncio.run(asyncio.wait_for(_drive(ws_url, url, expression, width), timeout))


def _devtools_port(proc: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
        if m:
            return int(m.group(1))
    raise RuntimeError("Chromium did not report its DevTools port; stderr:\n" + "".join(seen[-20:]))


def _page_ws(port: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.2)
    raise RuntimeError("Chromium opened no page target")


async def _drive(ws_url: str, url: str, expression: str, width: int) -> PageRun:
    run = PageRun()
    loaded = asyncio.Event()

    def on_event(method: str, params: dict) -> None:
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            run.console_errors.append(" ".join(str(a.get("value", a.get("description")))
                                               for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            run.console_errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            run.console_errors.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            run.requests.append(params.get("request", {}).get("url", ""))
        elif method == "Page.loadEventFired":
            loaded.set()

    async with devtools(ws_url, on_event) as page:
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.call(f"{domain}.enable")
        await page.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
        await page.call("Page.navigate", url=url)
        await loaded.wait()
        await asyncio.sleep(0.3)  # late console messages
        res = await page.call("Runtime.evaluate", expression=expression, returnByValue=True)
        run.value = res.get("result", {}).get("value")
        metrics = await page.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        run.screenshot = await page.screenshot(captureBeyondViewport=True,
                                               clip={"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1})
    return run
