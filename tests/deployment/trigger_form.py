"""The DAG's Trigger form in headless Chromium, on a running api-server (the deployment test calls it).

Drives the real Airflow UI over the Chrome DevTools protocol, logged in with the auth manager's token (its
`_token` cookie, as the login page sets it): opens the DAG's Trigger dialog, checks that no field or section is
in error, that the descriptions are rendered Markdown, that Trigger is enabled with the empty form, types only
the ARN, checks again, and submits. Returns what it saw; the caller checks the run it created through the API.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.fixtures.cdp import chromium, devtools

SECTIONS = ("Model", "Inference", "Human review", "Ground Truth", "Label Studio", "Training", "Connections")  # at least

# What the form shows, read in the page: fields marked invalid (Chakra sets data-invalid), required-field
# messages, the Trigger button's state, and whether the Markdown of the descriptions was rendered.
STATE_JS = """(() => {
  const submit = document.querySelector('[data-testid=trigger-dag-submit]');
  const dialog = (submit && submit.closest('[role=dialog]')) || document.body;
  const text = dialog.textContent;  // collapsed sections too
  return {
    invalid: [...dialog.querySelectorAll('[data-invalid]')].map(e => (e.innerText || e.id || '').slice(0, 80)),
    submit_found: !!submit,
    submit_disabled: submit ? submit.disabled : null,
    sections: %s.filter(s => text.includes(s)),
    code_in_descriptions: [...dialog.querySelectorAll('code')].map(e => e.innerText).slice(0, 50),
    raw_backticks: (text.match(/`rekfeedback_/g) || []).length,
    arn_value: (document.getElementById('element_project_version_arn') || {}).value,
  };
})()""" % json.dumps(list(SECTIONS))


class FormError(Exception):
    pass


def check_trigger_form(base_url: str, token: str, dag_id: str, arn: str, screenshots: Path,
                       timeout: float = 120.0) -> dict:
    try:
        with chromium(1400, 1000, timeout) as ws_url:
            return asyncio.run(asyncio.wait_for(_drive(ws_url, base_url, token, dag_id, arn, screenshots, timeout),
                                                timeout))
    except FileNotFoundError as err:
        raise FormError(str(err)) from err


async def _drive(ws_url: str, base: str, token: str, dag_id: str, arn: str, screenshots: Path,
                 timeout: float) -> dict:
    async with devtools(ws_url) as page:
        call, evaluate = page.call, page.evaluate

        async def until(what: str, expression: str):
            # Waits for the page to reach a state (React renders asynchronously); asserts nothing about time.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout / 2
            while not await evaluate(expression):
                if loop.time() > deadline:
                    await shot("timeout")
                    raise FormError(f"the page never showed {what}")
                await asyncio.sleep(0.2)

        async def click(element_js: str) -> None:
            """A real mouse click (press and release) at the middle of the element."""
            rect = await evaluate(f"(() => {{ const e = {element_js}; if (!e) return null; e.scrollIntoView({{block: 'center'}});"
                                  " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
            if not rect:
                await shot("missing")
                raise FormError(f"nothing to click: {element_js}")
            for kind in ("mousePressed", "mouseReleased"):
                await call("Input.dispatchMouseEvent", type=kind, x=rect[0], y=rect[1], button="left", clickCount=1)

        async def shot(name: str) -> None:
            (screenshots / f"trigger-form-{name}.png").write_bytes(await page.screenshot())

        for domain in ("Page", "Runtime", "Network"):
            await call(f"{domain}.enable")
        await call("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1, mobile=False)
        await call("Network.setCookie", name="_token", value=token, url=base, path="/")
        await call("Page.navigate", url=f"{base}/dags/{dag_id}")
        await until("the Trigger button", "!!document.querySelector('[data-testid=trigger-dag-button]')")
        await click("document.querySelector('[data-testid=trigger-dag-button]')")
        await until("the form's fields", "!!document.getElementById('element_project_version_arn')")
        await until("the Trigger form's submit button", "!!document.querySelector('[data-testid=trigger-dag-submit]')")
        empty = await evaluate(STATE_JS)
        await shot("empty")
        # The sections start collapsed: open "Model" with a real click, then click into the ARN field and type.
        await click("[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Model')")
        await until("the ARN field visible", "document.getElementById('element_project_version_arn')"
                                             ".getBoundingClientRect().height > 0")
        await click("document.getElementById('element_project_version_arn')")
        await until("the ARN field focused",
                    "document.activeElement === document.getElementById('element_project_version_arn')")
        await call("Input.insertText", text=arn)
        await until("the ARN in its field", f"document.getElementById('element_project_version_arn').value === {json.dumps(arn)}")
        typed = await evaluate(STATE_JS)
        await shot("arn")
        submitted = False
        if typed["submit_found"] and not typed["submit_disabled"]:
            await click("document.querySelector('[data-testid=trigger-dag-submit]')")
            await until("the dialog to close after Trigger",
                        "!document.querySelector('[data-testid=trigger-dag-submit]')")
            submitted = True
        return {"empty": empty, "arn": typed, "submitted": submitted}
