"""Label Studio over its REST API: one client on Airflow's `HttpHook` (and `HttpAsyncHook` for the trigger).

Why not ``label-studio-sdk``: it resolves beside Airflow 3.3 but adds pandas, numpy, opencv, nltk,
black, isort and requests-mock (a test tool) to every deployment and moves Airflow's own pin of
pyjwt back, for the handful of endpoints used here. The HTTP provider already ships with Airflow.

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

Errors are typed (`LabelStudioError` and its kinds below), so callers decide on the kind, never on the
message text. Example: ``AIRFLOW_CONN_LABEL_STUDIO_DEFAULT='{"conn_type": "labelstudio", "host":
"http://127.0.0.1:8080", "password": "<token>"}'``
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.exceptions import AirflowException

PAGE_SIZE = 100
REFRESH_PATH = "/api/token/refresh"


class LabelStudioError(AirflowException):
    """Label Studio answered with an error (`status`), or could not be asked."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class LabelStudioConnectionError(LabelStudioError):
    """The connection is wrong: no host or token, the server cannot be reached, or it refuses the token."""


class LabelStudioUnreachable(LabelStudioConnectionError):
    """Nothing answered (refused, timed out): maybe only for now, a waiting sensor keeps trying."""


class LabelStudioTokenRefused(LabelStudioConnectionError):
    """401/403: the token is wrong or expired. `personal_access_token` tells which kind was refused."""

    def __init__(self, message: str, status: int | None = None, personal_access_token: bool = False):
        super().__init__(message, status)
        self.personal_access_token = personal_access_token


class LabelStudioNotFound(LabelStudioError):
    """404: the project (or page) does not exist."""


class LabelStudioServerError(LabelStudioError):
    """5xx: the server is up but failing (restarting, a proxy error page); worth another try later."""


TRANSIENT = (LabelStudioUnreachable, LabelStudioServerError)


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


def token_of(conn) -> str:
    token = (conn.password or "").strip()
    if not token:
        raise LabelStudioConnectionError(
            f"Label Studio connection {conn.conn_id!r} has no API token: put it in the password field "
            "(Label Studio > Account & Settings > Access Token)")
    return token


def auth_kind(token: str, extra: dict) -> str:
    forced = (extra or {}).get("auth")
    if forced:
        if forced not in ("token", "pat"):
            raise LabelStudioConnectionError(f"connection extra 'auth' must be 'token' or 'pat', got {forced!r}")
        return forced
    return "pat" if token.startswith("eyJ") and token.count(".") == 2 else "token"


def error_for(status: int, detail: str, *, method: str, path: str, base_url: str, conn_id: str) -> LabelStudioError:
    """The typed error of one failed answer (sync and async clients alike)."""
    if path == REFRESH_PATH and status in (400, 401, 403):
        return LabelStudioTokenRefused(
            f"Label Studio at {base_url} refused the personal access token of Airflow connection {conn_id!r} "
            f"({status} from {REFRESH_PATH}: {detail}); put a valid one in its password field", status, True)
    if status in (401, 403):
        return LabelStudioTokenRefused(
            f"Label Studio at {base_url} refused the API token of Airflow connection {conn_id!r} ({status}: {detail}); "
            "put a valid token in its password field (a legacy token needs LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true "
            "on the server, or use a personal access token)", status)
    kind = LabelStudioNotFound if status == 404 else LabelStudioServerError if status >= 500 else LabelStudioError
    return kind(f"Label Studio {method} {path} failed with {status}: {detail}", status)


def detail_of(text: str, reason: str = "") -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return (text or "")[:200].strip() or reason
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("validation_errors") or body)[:300]
    return str(body)[:300]


def progress_of(project: dict) -> dict:
    """Counts from a project document: tasks, tasks answered, annotations.

    A task is answered once it has its `maximum_annotations` (the Community edition counts distinct
    annotators toward it, `finished_task_number`); with one annotation per task, any submitted one.
    """
    several = int(project.get("maximum_annotations") or 1) > 1
    tasks = int(project.get("task_number") or 0)
    answered = int(project.get("finished_task_number" if several else "num_tasks_with_annotations") or 0)
    if not several:
        # A skipped task (the review round's "reject") is decided too: done, with no answer to merge.
        answered = min(tasks, answered + int(project.get("skipped_annotations_number") or 0))
    return {"tasks": tasks,
            "annotated": answered,
            "annotations": int(project.get("total_annotations_number") or 0)}


class LabelStudioHook(HttpHook):
    """Talks to one Label Studio server; see the module docstring for the connection format.

    `connection` (optional): a connection object to use instead of looking `label_studio_conn_id` up
    (the preflight command and the local annotator take a URL and a token); see `for_url`.
    """

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

    def __init__(self, label_studio_conn_id: str = default_conn_name, *, connection=None, **kwargs) -> None:
        self._ls_base_url, self._ls_connection = "", None
        super().__init__(method="GET", http_conn_id=label_studio_conn_id, **kwargs)
        self.label_studio_conn_id = label_studio_conn_id
        self._given_connection = connection
        self._access_token: str | None = None
        self._session: requests.Session | None = None

    @classmethod
    def for_url(cls, url: str, token: str | None, *, auth: str | None = None, timeout: float = 30,
                name: str = "(command line)") -> "LabelStudioHook":
        """A hook on a URL and a token, without an Airflow connection."""
        from airflow.sdk import Connection

        extra = {"timeout": timeout, **({"auth": auth} if auth else {})}
        return cls(name, connection=Connection(conn_id=name, conn_type=cls.conn_type, host=url, password=token or "",
                                               extra=json.dumps(extra)))

    # --- connection ---------------------------------------------------------------------------

    def get_connection(self, conn_id: str):  # the given connection, else Airflow's lookup
        if self._given_connection is not None:
            return self._given_connection
        return super().get_connection(conn_id)

    @property
    def connection(self):
        if self._ls_connection is None:
            self._ls_connection = self.get_connection(self.label_studio_conn_id)
        return self._ls_connection

    @property
    def base_url(self) -> str:  # HttpHook's attribute, computed from our connection rules
        if not self._ls_base_url:
            self._ls_base_url = base_url_from(self.connection)
        return self._ls_base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self._ls_base_url = value

    def _set_base_url(self, connection) -> None:
        self._ls_base_url = base_url_from(connection)
        self._base_url_initialized = True

    @property
    def public_url(self) -> str:
        return ((self.connection.extra_dejson or {}).get("public_url") or self.base_url).rstrip("/")

    @property
    def token(self) -> str:
        return token_of(self.connection)

    @property
    def timeout(self) -> float:
        return float((self.connection.extra_dejson or {}).get("timeout", 30))

    def get_conn(self, headers: dict | None = None, extra_options: dict | None = None) -> requests.Session:
        """One keep-alive session; the connection's extra holds our settings, not HTTP headers."""
        if self._session is None:
            self._session = self._configure_session_from_mount_adapters(requests.Session())
        self.merged_extra = {"timeout": self.timeout, "check_response": False}
        return self._session

    def _what_to_check(self) -> str:
        return (f"check the host of Airflow connection {self.label_studio_conn_id!r} ({self.base_url}) "
                "and that Label Studio is running (bash scripts/labelstudio.sh status)")

    def _pat(self) -> bool:
        return auth_kind(self.token, self.connection.extra_dejson) == "pat"

    def _auth_header(self, refresh: bool = False) -> dict:
        if not self._pat():
            return {"Authorization": f"Token {self.token}"}
        if refresh or self._access_token is None:
            self._access_token = self._send("POST", REFRESH_PATH, json={"refresh": self.token}, auth=False).json()["access"]
        return {"Authorization": f"Bearer {self._access_token}"}

    def _send(self, method: str, path: str, *, auth: bool = True, params: dict | None = None,
              json: Any = None) -> requests.Response:
        self.method = method
        for attempt in (1, 2):
            headers = self._auth_header(refresh=attempt == 2) if auth else {}
            try:
                r = self.run(endpoint=path, data=params, headers=headers, json=json)
            except requests.ConnectionError as exc:
                raise LabelStudioUnreachable(f"cannot reach Label Studio at {self.base_url}: {exc.__class__.__name__}; "
                                             f"{self._what_to_check()}") from exc
            except requests.Timeout as exc:
                raise LabelStudioUnreachable(f"Label Studio at {self.base_url} did not answer within {self.timeout}s; "
                                             f"{self._what_to_check()}") from exc
            # An expired PAT access token answers 401: refresh once and retry.
            if not (r.status_code == 401 and auth and attempt == 1 and self._pat()):
                break
        if r.status_code >= 400:
            raise error_for(r.status_code, detail_of(r.text, r.reason), method=method, path=path,
                            base_url=self.base_url, conn_id=self.label_studio_conn_id)
        return r

    def request(self, method: str, path: str, **kwargs) -> Any:
        r = self._send(method, path, **kwargs)
        return r.json() if r.content else None

    def version(self) -> dict:
        """GET /api/version (no token needed): LabelStudioError or ValueError if this is not Label Studio."""
        body = self._send("GET", "/api/version", auth=False).json()
        if not isinstance(body, dict):
            raise ValueError(f"{self.base_url}/api/version did not answer a JSON object")
        return body

    def check(self) -> dict:
        """Fail at once, naming the connection, when the URL or token is wrong. Returns the current user."""
        try:
            return self._send("GET", "/api/current-user/whoami").json()
        except (LabelStudioConnectionError, LabelStudioServerError):
            raise
        except (LabelStudioError, ValueError) as exc:
            raise LabelStudioConnectionError(
                f"{self.base_url} does not look like a Label Studio server ({exc}); {self._what_to_check()}",
                getattr(exc, "status", None)) from exc

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
            try:
                r = self.request("GET", path, params={**params, "page": page, "page_size": PAGE_SIZE})
            except LabelStudioNotFound:  # past the last page
                return
            rows = r.get(key, []) if key else r.get("results", [])
            yield from rows
            if len(rows) < PAGE_SIZE or (not key and not r.get("next")):
                return
            page += 1

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
            except TRANSIENT:
                if time.monotonic() > deadline:
                    raise
            time.sleep(interval)
