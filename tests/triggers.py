"""Running a deferrable trigger in a test: its first event, as the triggerer would get it."""

from __future__ import annotations

import asyncio


def first_event(trigger, timeout: float = 60):
    """The trigger's first TriggerEvent, within `timeout` seconds; the generator is closed afterwards."""

    async def run():
        gen = trigger.run()
        try:
            return await asyncio.wait_for(anext(gen), timeout)
        finally:
            await gen.aclose()

    return asyncio.run(run())
