"""A person sees the image with the model's boxes on a Label Studio task page (headless Chromium)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import requests

from rekfeedback_local.annotator import label_set_of
from tests.fixtures.label_studio import run_operator
from tests.fixtures.cdp import chromium, devtools, find_chromium

pytestmark = [pytest.mark.labelstudio, pytest.mark.chromium]

# The editor is ready when the task image has loaded and the canvas layer for the regions exists.
READY = """(() => {
  const imgs = [...document.images].filter(i => i.src.includes('Signature') && i.complete && i.naturalWidth > 0);
  const regions = document.querySelectorAll('canvas').length;
  return imgs.length > 0 && regions > 0;
})()"""


def session_cookie(url: str, email: str, password: str) -> str:
    s = requests.Session()
    s.get(f"{url}/user/login/", timeout=30)
    r = s.post(f"{url}/user/login/", data={"email": email, "password": password,
                                           "csrfmiddlewaretoken": s.cookies.get("csrftoken")},
               headers={"Referer": f"{url}/user/login/"}, timeout=30)
    r.raise_for_status()
    assert "sessionid" in s.cookies, "Label Studio login did not set a session cookie"
    return s.cookies["sessionid"]


async def _screenshot(ws_url: str, base: str, page_url: str, sessionid: str, timeout: float) -> tuple[bytes, bool]:
    async with devtools(ws_url) as page:
        await page.call("Network.enable")
        await page.call("Network.setCookie", name="sessionid", value=sessionid, url=base)
        await page.call("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
        await page.call("Page.navigate", url=page_url)
        deadline = time.monotonic() + timeout
        ready = False
        while time.monotonic() < deadline:
            if await page.evaluate(READY) is True:
                ready = True
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.5)  # let the regions draw over the image
        return await page.screenshot(), ready


def test_task_page_shows_image_with_model_boxes(make_turn, ls_hook, label_studio, tmp_path):
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium here (apt-get install chromium) for the Label Studio screenshot")
    turn = make_turn(n=2)
    out, _ = run_operator(turn, f"manual__{uuid.uuid4().hex[:8]}")
    task = next(t for t in ls_hook.list_tasks(out["project_id"]) if t["predictions"][0]["result"])
    page = ls_hook.task_url(out["project_id"], task["id"])
    cookie = session_cookie(label_studio.url, label_studio.username, label_studio.password)

    with chromium(1400, 900, 30) as ws_url:
        png, ready = asyncio.run(asyncio.wait_for(_screenshot(ws_url, label_studio.url, page, cookie, 60), 90))
    shot = tmp_path / "label-studio-task.png"
    shot.write_bytes(png)
    print(f"screenshot: {shot}")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert ready, f"the task page never showed the image and its region canvas; see {shot}"
    # The regions panel lists the model's labels (the boxes drawn over the image).
    labels = {r["value"]["rectanglelabels"][0] for r in task["predictions"][0]["result"]}
    assert labels <= set(label_set_of(ls_hook.get_project(out["project_id"])["label_config"]))
