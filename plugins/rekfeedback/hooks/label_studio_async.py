"""The Label Studio client for the triggerer, on Airflow's `HttpAsyncHook` (aiohttp).

Same connection rules, token kinds and typed errors as `LabelStudioHook` (rekfeedback.hooks.label_studio);
only the project document is read here, the one call a waiting trigger makes.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
from airflow.providers.http.hooks.http import HttpAsyncHook, SessionConfig

from rekfeedback.hooks.label_studio import (
    REFRESH_PATH, LabelStudioHook, LabelStudioUnreachable, auth_kind, base_url_from, detail_of, error_for, token_of,
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
        self.token = self.kind = None
        self._access: str | None = None

    async def config(self) -> SessionConfig:
        if not self._config:
            from airflow.providers.common.compat.connection import get_async_connection

            conn = await get_async_connection(conn_id=self.http_conn_id, hook=self)
            self.token = token_of(conn)
            self.kind = auth_kind(self.token, conn.extra_dejson)
            timeout = float((conn.extra_dejson or {}).get("timeout", 30))
            self._config = SessionConfig(base_url=base_url_from(conn), headers={}, auth=None,
                                         extra_options={"timeout": aiohttp.ClientTimeout(total=timeout)})
        return self._config

    @property
    def base_url(self) -> str:
        return self._config.base_url if self._config else ""

    @base_url.setter
    def base_url(self, value: str) -> None:  # HttpAsyncHook's attribute; ours comes from config()
        pass

    async def _call(self, method: str, path: str, headers: dict, body: dict | None = None):
        """(status, text) of one request; LabelStudioUnreachable when nothing answers."""
        try:
            async with self.session(method=method) as http:
                r = await http.run(endpoint=path, json=body, headers=headers, extra_options={"check_response": False})
                return r.status, await r.text(), r.reason or ""
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            raise LabelStudioUnreachable(f"cannot reach Label Studio at {self.base_url}: {exc.__class__.__name__}; "
                                         f"check the host of Airflow connection {self.label_studio_conn_id!r}") from exc

    def _raise(self, status: int, text: str, reason: str, method: str, path: str):
        raise error_for(status, detail_of(text, reason), method=method, path=path, base_url=self.base_url,
                        conn_id=self.label_studio_conn_id)

    async def _auth_header(self, refresh: bool) -> dict:
        await self.config()
        if self.kind == "token":
            return {"Authorization": f"Token {self.token}"}
        if refresh or self._access is None:
            status, text, reason = await self._call("POST", REFRESH_PATH, {}, body={"refresh": self.token})
            if status >= 400:
                self._raise(status, text, reason, "POST", REFRESH_PATH)
            self._access = json.loads(text)["access"]
        return {"Authorization": f"Bearer {self._access}"}

    async def get_json(self, path: str):
        """GET `path` with the token; typed errors as LabelStudioHook raises them (ValueError: not JSON)."""
        for attempt in (1, 2):
            status, text, reason = await self._call("GET", path, await self._auth_header(refresh=attempt == 2))
            # An expired PAT access token answers 401: refresh once and retry.
            if not (status == 401 and attempt == 1 and self.kind == "pat"):
                break
        if status >= 400:
            self._raise(status, text, reason, "GET", path)
        return json.loads(text)

    async def get_project(self, project_id: int) -> dict:
        return await self.get_json(f"/api/projects/{int(project_id)}/")
