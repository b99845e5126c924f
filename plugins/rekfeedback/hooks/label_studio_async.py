"""The Label Studio client for the triggerer, on Airflow's `HttpAsyncHook` (aiohttp).

Same connection rules, token handling and typed errors as `LabelStudioHook` (both come from
`hooks.label_studio_connection`); only the project document is read here, the one call a waiting
trigger makes.
"""

from __future__ import annotations

import asyncio

import aiohttp
from airflow.providers.http.hooks.http import HttpAsyncHook, SessionConfig

from rekfeedback.hooks.label_studio import LabelStudioHook
from rekfeedback.hooks.label_studio_connection import (
    REFRESH_PATH, TokenAuth, base_url_from, detail_of, error_for, json_of, timeout_of, unreachable,
)


class LabelStudioAsyncHook(HttpAsyncHook):
    conn_name_attr = LabelStudioHook.conn_name_attr
    default_conn_name = LabelStudioHook.default_conn_name
    conn_type = LabelStudioHook.conn_type
    hook_name = LabelStudioHook.hook_name

    def __init__(self, label_studio_conn_id: str = default_conn_name) -> None:
        # No retries inside one call: the trigger's own poll loop is the retry, at its own interval.
        super().__init__(method="GET", http_conn_id=label_studio_conn_id, retry_limit=1)
        self.label_studio_conn_id = label_studio_conn_id
        self.auth: TokenAuth | None = None

    async def config(self) -> SessionConfig:
        if not self._config:
            from airflow.providers.common.compat.connection import get_async_connection

            conn = await get_async_connection(conn_id=self.http_conn_id, hook=self)
            self.auth = TokenAuth.of(conn)
            self._config = SessionConfig(base_url=base_url_from(conn), headers={}, auth=None, extra_options={
                "timeout": aiohttp.ClientTimeout(total=timeout_of(conn))})
        return self._config

    @property
    def base_url(self) -> str:
        return self._config.base_url if self._config else ""

    @base_url.setter
    def base_url(self, value: str) -> None:  # HttpAsyncHook's attribute; ours comes from config()
        pass

    async def _call(self, method: str, path: str, headers: dict, body: dict | None = None) -> tuple[int, str, str]:
        """(status, text, reason) of one request; LabelStudioUnreachable when nothing answers."""
        try:
            async with self.session(method=method) as http:
                r = await http.run(endpoint=path, json=body, headers=headers, extra_options={"check_response": False})
                return r.status, await r.text(), r.reason or ""
        except asyncio.TimeoutError as exc:
            raise unreachable(self.base_url, self.label_studio_conn_id, exc,
                              self._config.extra_options["timeout"].total) from exc
        except aiohttp.ClientConnectionError as exc:
            raise unreachable(self.base_url, self.label_studio_conn_id, exc) from exc

    def _checked(self, status: int, text: str, reason: str, method: str, path: str):
        if status >= 400:
            raise error_for(status, detail_of(text, reason), method=method, path=path, base_url=self.base_url,
                            conn_id=self.label_studio_conn_id)
        return json_of(text, method=method, path=path, base_url=self.base_url)

    async def _headers(self, refresh: bool) -> dict:
        await self.config()
        if self.auth.needs_access(refresh):
            answer = await self._call("POST", REFRESH_PATH, {}, body=self.auth.refresh_body())
            self.auth.take_access(self._checked(*answer, "POST", REFRESH_PATH))
        return self.auth.header()

    async def get_json(self, path: str):
        """GET `path` with the token; typed errors as LabelStudioHook raises them."""
        for attempt in (1, 2):
            answer = await self._call("GET", path, await self._headers(refresh=attempt == 2))
            if not self.auth.retry(answer[0], attempt):
                break
        return self._checked(*answer, "GET", path)

    async def get_project(self, project_id: int) -> dict:
        return await self.get_json(f"/api/projects/{int(project_id)}/")
