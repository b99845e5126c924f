"""Label Studio over its REST API: one client on Airflow's `HttpHook` (and `HttpAsyncHook` for the trigger).

Why not ``label-studio-sdk``: 2.1.2 resolves beside Airflow 3.3 only by moving Airflow's pins of pyjwt and
numpy back, and any version adds black, isort, nltk, opencv and requests-mock (a test tool) to every
deployment, for the handful of endpoints used here. The HTTP provider already ships with Airflow.

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

Errors are typed (`LabelStudioError` and its kinds, in `hooks.label_studio_connection` with the token
handling both clients share), so callers decide on the kind, never on the message text. Example: ``AIRFLOW_CONN_LABEL_STUDIO_DEFAULT='{"conn_type": "labelstudio", "host":
"http://127.0.0.1:8080", "password": "<token>"}'``
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator

import requests
from airflow.providers.http.hooks.http import HttpHook

from rekfeedback.hooks.label_studio_connection import (  # noqa: F401 - the errors are part of this hook's API
    REFRESH_PATH, TRANSIENT, LabelStudioConnectionError, LabelStudioError, LabelStudioNotFound,
    LabelStudioServerError, LabelStudioTokenRefused, LabelStudioUnexpectedAnswer, LabelStudioUnreachable, TokenAuth,
    base_url_from, detail_of, error_for, json_of, timeout_of, token_of, unreachable,
)

PAGE_SIZE = 100


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
        self._auth: TokenAuth | None = None
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
        return self.auth.token

    @property
    def timeout(self) -> float:
        return timeout_of(self.connection)

    def get_conn(self, headers: dict | None = None, extra_options: dict | None = None) -> requests.Session:
        """One keep-alive session; the connection's extra holds our settings, not HTTP headers."""
        if self._session is None:
            self._session = self._configure_session_from_mount_adapters(requests.Session())
        self.merged_extra = {"timeout": self.timeout, "check_response": False}
        return self._session

    @property
    def auth(self) -> TokenAuth:
        """The token and its kind, decided once per hook (and the PAT's current access token)."""
        if self._auth is None:
            self._auth = TokenAuth.of(self.connection)
        return self._auth

    def _call(self, method: str, path: str, headers: dict, params: dict | None, json: Any) -> requests.Response:
        self.method = method
        try:
            return self.run(endpoint=path, data=params, headers=headers, json=json)
        except requests.Timeout as exc:
            raise unreachable(self.base_url, self.label_studio_conn_id, exc, self.timeout) from exc
        except requests.ConnectionError as exc:
            raise unreachable(self.base_url, self.label_studio_conn_id, exc) from exc

    def _checked(self, r: requests.Response, method: str, path: str) -> Any:
        if r.status_code >= 400:
            raise error_for(r.status_code, detail_of(r.text, r.reason), method=method, path=path,
                            base_url=self.base_url, conn_id=self.label_studio_conn_id)
        return json_of(r.text, method=method, path=path, base_url=self.base_url)

    def _headers(self, refresh: bool) -> dict:
        auth = self.auth
        if auth.needs_access(refresh):
            r = self._call("POST", REFRESH_PATH, {}, None, auth.refresh_body())
            auth.take_access(self._checked(r, "POST", REFRESH_PATH))
        return auth.header()

    def request(self, method: str, path: str, *, auth: bool = True, params: dict | None = None,
                json: Any = None) -> Any:
        """One API call: its JSON body (None if empty), or a typed `LabelStudioError`."""
        for attempt in (1, 2):
            r = self._call(method, path, self._headers(refresh=attempt == 2) if auth else {}, params, json)
            if not (auth and self.auth.retry(r.status_code, attempt)):
                break
        return self._checked(r, method, path)

    def version(self) -> dict:
        """GET /api/version (no token needed); LabelStudioUnexpectedAnswer if this is not Label Studio."""
        body = self.request("GET", "/api/version", auth=False)
        if not isinstance(body, dict):
            raise LabelStudioUnexpectedAnswer(f"{self.base_url}/api/version did not answer a JSON object")
        return body

    def check(self) -> dict:
        """Fail at once, naming the connection, when the URL or token is wrong. Returns the current user."""
        try:
            user = self.request("GET", "/api/current-user/whoami")
            if not isinstance(user, dict):
                raise LabelStudioUnexpectedAnswer("/api/current-user/whoami did not answer a JSON object")
            return user
        except (LabelStudioConnectionError, LabelStudioServerError):
            raise
        except LabelStudioError as exc:
            raise LabelStudioConnectionError(
                f"{self.base_url} does not look like a Label Studio server ({exc}); check the host of Airflow "
                f"connection {self.label_studio_conn_id!r}: it must be the Label Studio base URL", exc.status) from exc

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

    def ensure_project(self, title: str, label_config: str, description: str = "", **fields) -> tuple[dict, bool]:
        """(project, created): the project titled `title`, created if missing, `fields` set if they differ.

        The title is the retry key: a retried task finds the project its first try created. `label_config`
        and `description` are left as they are on a found project (annotations may already rely on them).
        """
        project = self.find_project(title)
        if project is None:
            return self.create_project(title, label_config, description, **fields), True
        changed = {k: v for k, v in fields.items() if project.get(k) != v}
        if changed:
            project = self.update_project(project["id"], **changed)
        return project, False

    def update_project(self, project_id: int, **fields) -> dict:
        return self.request("PATCH", f"/api/projects/{int(project_id)}/", json=fields)

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

    def task_ids(self, project_id: int, data_key: str) -> dict[str, int]:
        """Task id by the value of `data_key` in each task's data (the first task when several share it)."""
        out: dict[str, int] = {}
        for task in self.list_tasks(project_id, fields="task_only"):
            value = (task.get("data") or {}).get(data_key)
            if value and value not in out:
                out[value] = int(task["id"])
        return out

    def import_missing(self, project_id: int, refs: list[str], task_for: Callable[[str], dict], *, data_key: str,
                       chunk_size: int = 100) -> dict[str, int]:
        """Import a task for each of `refs` that has none yet (matched on `data[data_key]`); the task ids by ref.

        Retry-safe: a retried call imports only what an earlier try did not. `task_for(ref)` is called only
        for what is imported (a presigned image URL is made per import). A task still missing after the
        import is a LabelStudioError naming the project.
        """
        existing = self.task_ids(project_id, data_key)
        missing = [ref for ref in refs if ref not in existing]
        self.log.info("%d tasks wanted in project %s, %d already there, importing %d", len(refs), project_id,
                      len(refs) - len(missing), len(missing))
        for start in range(0, len(missing), max(1, int(chunk_size))):
            chunk = missing[start:start + max(1, int(chunk_size))]
            out = self.import_tasks(project_id, [task_for(ref) for ref in chunk]) or {}
            self.log.info("imported %s tasks, %s predictions", out.get("task_count"), out.get("prediction_count"))
        ids = self.task_ids(project_id, data_key)
        lost = [ref for ref in refs if ref not in ids]
        if lost:
            raise LabelStudioError(f"Label Studio project {project_id} lacks tasks for {len(lost)} images after "
                                   f"import, e.g. {lost[:3]}; re-run the task (it imports only what is missing)")
        return ids

    def export_tasks(self, project_id: int) -> list[dict]:
        """Every task of the project with its annotations (Label Studio's JSON export)."""
        return self.request("GET", f"/api/projects/{int(project_id)}/export",
                            params={"exportType": "JSON", "download_all_tasks": "true"})

    def create_annotation(self, task_id: int, result: list[dict], **fields) -> dict:
        return self.request("POST", f"/api/tasks/{int(task_id)}/annotations", json={"result": result, **fields})

    def progress(self, project_id: int) -> dict:
        return progress_of(self.get_project(project_id))
