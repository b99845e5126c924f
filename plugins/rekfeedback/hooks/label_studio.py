"""Label Studio over its REST API.

Plain HTTP (``requests`` for tasks, ``httpx`` for the async trigger; both already ship with
Airflow) rather than ``label-studio-sdk``: the SDK pins its own pydantic/httpx versions, which
would have to be solved together with Airflow's for a handful of endpoints.

Connection (conn_type ``labelstudio``):
- host: the base URL, e.g. ``http://127.0.0.1:8080`` (a bare host name gets ``http://`` and the port field);
- password: the API token. Two kinds are accepted:
  * a legacy token (40 hex characters, sent as ``Authorization: Token ...``); Label Studio >= 1.20 accepts
    it only if ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true`` was set when the organization was created
    (``scripts/labelstudio.sh`` does that);
  * a personal access token (a JWT refresh token, "eyJ..."), exchanged at ``/api/token/refresh`` for a
    short-lived access token sent as ``Authorization: Bearer ...`` and refreshed when it expires.
  extra ``{"auth": "token" | "pat"}`` forces one; by default a JWT-shaped token is treated as a PAT.
- extra ``public_url`` (optional): the URL people open in a browser when it differs from the one Airflow
  uses (docker-compose service name vs localhost); used by the project link.
- extra ``timeout`` (optional, seconds, default 30) per HTTP request.

Example: ``AIRFLOW_CONN_LABEL_STUDIO_DEFAULT='{"conn_type": "labelstudio", "host": "http://127.0.0.1:8080", "password": "<token>"}'``
"""

from __future__ import annotations

import logging
import time
from functools import cached_property
from typing import Any, Iterator

import requests
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException

log = logging.getLogger(__name__)

PAGE_SIZE = 100


class LabelStudioConnectionError(AirflowException):
    """Label Studio cannot be reached, or refuses the connection's token (check the connection)."""


def base_url_from(conn) -> str:
    host = (conn.host or "").strip().rstrip("/")
    if not host:
        raise LabelStudioConnectionError(
            f"Label Studio connection {conn.conn_id!r} has no host: set it to the server URL, e.g. http://127.0.0.1:8080")
    if "://" not in host:
        scheme = (conn.extra_dejson or {}).get("scheme") or conn.schema or "http"
        host = f"{scheme}://{host}"
    if conn.port and host.count(":") < 2:
        host = f"{host}:{conn.port}"
    return host


def auth_kind(token: str, extra: dict) -> str:
    forced = (extra or {}).get("auth")
    if forced:
        if forced not in ("token", "pat"):
            raise LabelStudioConnectionError(f"connection extra 'auth' must be 'token' or 'pat', got {forced!r}")
        return forced
    return "pat" if token.startswith("eyJ") and token.count(".") == 2 else "token"


class LabelStudioHook(BaseHook):
    """Talks to one Label Studio server; see the module docstring for the connection format."""

    conn_name_attr = "label_studio_conn_id"
    default_conn_name = "label_studio_default"
    conn_type = "labelstudio"
    hook_name = "Label Studio"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "login"],
            "relabeling": {"host": "Label Studio URL", "password": "API token (legacy token or personal access token)"},
            "placeholders": {
                "host": "http://127.0.0.1:8080",
                "password": "40-hex legacy token, or a personal access token (JWT)",
                "extra": '{"public_url": "http://localhost:8080"}',
            },
        }

    def __init__(self, label_studio_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.label_studio_conn_id = label_studio_conn_id
        self._access_token: str | None = None

    # --- connection ---------------------------------------------------------------------------

    @cached_property
    def connection(self):
        return self.get_connection(self.label_studio_conn_id)

    @cached_property
    def base_url(self) -> str:
        return base_url_from(self.connection)

    @cached_property
    def public_url(self) -> str:
        return ((self.connection.extra_dejson or {}).get("public_url") or self.base_url).rstrip("/")

    @cached_property
    def token(self) -> str:
        token = (self.connection.password or "").strip()
        if not token:
            raise LabelStudioConnectionError(
                f"Label Studio connection {self.label_studio_conn_id!r} has no API token: put it in the password field "
                "(Label Studio > Account & Settings > Access Token)")
        return token

    @cached_property
    def timeout(self) -> float:
        return float((self.connection.extra_dejson or {}).get("timeout", 30))

    @cached_property
    def session(self) -> requests.Session:
        return requests.Session()

    def get_conn(self) -> requests.Session:
        return self.session

    def _what_to_check(self) -> str:
        return (f"check the host of Airflow connection {self.label_studio_conn_id!r} ({self.base_url}) "
                "and that Label Studio is running (bash scripts/labelstudio.sh status)")

    def _auth_header(self, refresh: bool = False) -> dict:
        if auth_kind(self.token, self.connection.extra_dejson) == "token":
            return {"Authorization": f"Token {self.token}"}
        if refresh or self._access_token is None:
            r = self._send("POST", "/api/token/refresh", json={"refresh": self.token}, auth=False)
            self._access_token = r.json()["access"]
        return {"Authorization": f"Bearer {self._access_token}"}

    def _send(self, method: str, path: str, *, auth: bool = True, **kwargs) -> requests.Response:
        url = f"{self.base_url}{path}"
        headers = kwargs.pop("headers", {})
        for attempt in (1, 2):
            if auth:
                headers.update(self._auth_header(refresh=attempt == 2))
            try:
                r = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            except requests.ConnectionError as exc:
                raise LabelStudioConnectionError(
                    f"cannot reach Label Studio at {self.base_url}: {exc.__class__.__name__}; {self._what_to_check()}") from exc
            except requests.Timeout as exc:
                raise LabelStudioConnectionError(
                    f"Label Studio at {self.base_url} did not answer within {self.timeout}s; {self._what_to_check()}") from exc
            # An expired PAT access token answers 401: refresh once and retry.
            if r.status_code == 401 and auth and attempt == 1 and auth_kind(self.token, self.connection.extra_dejson) == "pat":
                continue
            break
        if r.status_code in (401, 403):
            raise LabelStudioConnectionError(
                f"Label Studio at {self.base_url} refused the API token of Airflow connection "
                f"{self.label_studio_conn_id!r} ({r.status_code}: {_detail(r)}); put a valid token in its password field "
                "(a legacy token needs LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true on the server, or use a personal access token)")
        if r.status_code >= 400:
            raise AirflowException(f"Label Studio {method} {path} failed with {r.status_code}: {_detail(r)}")
        return r

    def request(self, method: str, path: str, **kwargs) -> Any:
        r = self._send(method, path, **kwargs)
        return r.json() if r.content else None

    def check(self) -> dict:
        """Fail at once, naming the connection, when the URL or token is wrong. Returns the current user."""
        try:
            r = self._send("GET", "/api/current-user/whoami")
            return r.json()
        except LabelStudioConnectionError:
            raise
        except (AirflowException, ValueError) as exc:
            raise LabelStudioConnectionError(
                f"{self.base_url} does not look like a Label Studio server ({exc}); {self._what_to_check()}") from exc

    def test_connection(self) -> tuple[bool, str]:
        try:
            user = self.check()
            return True, f"connected to Label Studio as {user.get('email') or user.get('username')}"
        except Exception as exc:  # the UI shows the message
            return False, str(exc)

    # --- projects -----------------------------------------------------------------------------

    def _paged(self, path: str, params: dict, key: str | None) -> Iterator[dict]:
        page = 1
        while True:
            r = self._session_get_page(path, {**params, "page": page, "page_size": PAGE_SIZE})
            if r is None:
                return
            rows = r.get(key, []) if key else r.get("results", [])
            yield from rows
            if len(rows) < PAGE_SIZE or (not key and not r.get("next")):
                return
            page += 1

    def _session_get_page(self, path: str, params: dict) -> dict | None:
        try:
            return self.request("GET", path, params=params)
        except LabelStudioConnectionError:
            raise
        except AirflowException as exc:
            if "failed with 404" in str(exc):  # past the last page
                return None
            raise

    def list_projects(self) -> list[dict]:
        return list(self._paged("/api/projects", {}, None))

    def find_project(self, title: str) -> dict | None:
        """The project with exactly this title; the lowest id if a race ever created two."""
        matches = [p for p in self._paged("/api/projects", {"title": title}, None) if p.get("title") == title]
        return min(matches, key=lambda p: p["id"]) if matches else None

    def create_project(self, title: str, label_config: str, description: str = "", **fields) -> dict:
        return self.request("POST", "/api/projects",
                            json={"title": title, "label_config": label_config, "description": description, **fields})

    def get_project(self, project_id: int) -> dict:
        return self.request("GET", f"/api/projects/{int(project_id)}/")

    def project_url(self, project_id: int) -> str:
        return f"{self.public_url}/projects/{int(project_id)}/data"

    def task_url(self, project_id: int, task_id: int) -> str:
        return f"{self.public_url}/projects/{int(project_id)}/data?task={int(task_id)}"

    # --- tasks --------------------------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: list[dict]) -> dict:
        return self.request("POST", f"/api/projects/{int(project_id)}/import", json=tasks)

    def list_tasks(self, project_id: int, fields: str = "all") -> list[dict]:
        return list(self._paged("/api/tasks", {"project": int(project_id), "fields": fields}, "tasks"))

    def export_tasks(self, project_id: int) -> list[dict]:
        """Every task of the project with its annotations (Label Studio's JSON export)."""
        return self.request("GET", f"/api/projects/{int(project_id)}/export",
                            params={"exportType": "JSON", "download_all_tasks": "true"})

    def create_annotation(self, task_id: int, result: list[dict], **fields) -> dict:
        return self.request("POST", f"/api/tasks/{int(task_id)}/annotations", json={"result": result, **fields})

    def progress(self, project_id: int) -> dict:
        return progress_of(self.get_project(project_id))

    def wait_until_up(self, timeout: float = 120, interval: float = 2) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.check()
                return
            except LabelStudioConnectionError as exc:
                if "refused the API token" in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(interval)


def progress_of(project: dict) -> dict:
    """Counts from a project document: tasks, tasks answered, annotations.

    A task is answered once it has its `maximum_annotations` (the Community edition counts distinct
    annotators toward it, `finished_task_number`); with one annotation per task, any submitted one.
    """
    several = int(project.get("maximum_annotations") or 1) > 1
    return {"tasks": int(project.get("task_number") or 0),
            "annotated": int(project.get("finished_task_number" if several else "num_tasks_with_annotations") or 0),
            "annotations": int(project.get("total_annotations_number") or 0)}


def _detail(r) -> str:
    try:
        body = r.json()
        if isinstance(body, dict):
            return str(body.get("detail") or body.get("validation_errors") or body)[:300]
        return str(body)[:300]
    except ValueError:
        return (r.text or "")[:200].strip() or r.reason
