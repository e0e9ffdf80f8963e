"""A real headless Chromium, driven over the DevTools protocol: render a page, read its text, screenshot it.

Bokeh draws its widgets inside shadow roots, which `--dump-dom` leaves out, so the text is read
by walking them in the page.
"""

import asyncio
import base64
import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tornado.websocket import websocket_connect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

_TEXT = """(() => {
  const parts = [];
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) parts.push(child.textContent);
      else if (!["STYLE", "SCRIPT"].includes(child.nodeName)) walk(child);
    }
  };
  walk(document.body);
  return parts.join(" ").replace(/\\s+/g, " ");
})()"""


GRID_POINTS = re.compile(r"(\d+)/(\d+)")


def shows_progress_under_way(text: str) -> bool:
    """The Bespoke page shows a workflow running with a torsiondrive part done."""
    return "running" in text and any(0 < int(done) < int(total) for done, total in GRID_POINTS.findall(text))


def render_in_background(url: str, profile: Path, screenshot: Path, ready: Callable[[str], bool]) -> Future:
    """`render` on a thread of its own; the future's result is the text."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(render, url, profile, screenshot, ready, 240)
    pool.shutdown(wait=False)
    return future


def render(url: str, profile: Path, screenshot: Path, ready: Callable[[str], bool], timeout: float = 90) -> str:
    """The visible text of `url` once `ready(text)` holds (or at `timeout` s); saves a PNG screenshot."""
    if CHROMIUM is None:
        raise FileNotFoundError("chromium is not installed")
    browser = subprocess.Popen(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
            "--remote-allow-origins=*", f"--user-data-dir={profile}", "--window-size=1400,1100", url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return asyncio.run(_read(_page_socket(profile, url, timeout), screenshot, ready, timeout))
    finally:
        browser.terminate()
        browser.wait(timeout=30)


def _page_socket(profile: Path, url: str, timeout: float) -> str:
    """The DevTools websocket of the browser's page showing `url`."""
    deadline = time.monotonic() + timeout
    port_file = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            port = port_file.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as answer:
                pages = [t for t in json.load(answer) if t["type"] == "page" and t["url"].startswith(url[:20])]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.2)
    raise TimeoutError("chromium did not open the page")


async def _read(socket_url: str, screenshot: Path, ready: Callable[[str], bool], timeout: float) -> str:
    connection = await websocket_connect(socket_url, max_message_size=64 * 2**20)
    calls = iter(range(1, 10**6))

    async def call(method: str, **params):
        number = next(calls)
        await connection.write_message(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(await connection.read_message())
            if message.get("id") == number:
                return message.get("result", {})

    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        evaluated = await call("Runtime.evaluate", expression=_TEXT, returnByValue=True)
        text = evaluated.get("result", {}).get("value") or ""
        if ready(text):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)  # let the plots finish drawing before the picture
    shot = await call("Page.captureScreenshot", format="png")
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    connection.close()
    return text
