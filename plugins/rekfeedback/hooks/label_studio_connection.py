"""What both Label Studio clients share: the connection's rules, the token (its kind decided once), typed errors.

`LabelStudioHook` (requests, in workers) and `LabelStudioAsyncHook` (aiohttp, in the triggerer) differ only
in how they send a request; everything decided about an answer or a connection lives here, once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from airflow.sdk.exceptions import AirflowException

REFRESH_PATH = "/api/token/refresh"
DEFAULT_TIMEOUT = 30.0


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
    """5xx or 429: the server is up but failing or busy (restarting, a proxy error page); worth another try later."""


class LabelStudioUnexpectedAnswer(LabelStudioError):
    """The server answered, but not as Label Studio does (not JSON, or not the expected shape)."""


# What a waiting sensor or trigger logs and retries at its next poll instead of failing.
TRANSIENT = (LabelStudioUnreachable, LabelStudioServerError, LabelStudioUnexpectedAnswer)


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


def timeout_of(conn) -> float:
    return float((conn.extra_dejson or {}).get("timeout", DEFAULT_TIMEOUT))


def token_of(conn) -> str:
    token = (conn.password or "").strip()
    if not token:
        raise LabelStudioConnectionError(
            f"Label Studio connection {conn.conn_id!r} has no API token: put it in the password field "
            "(Label Studio > Account & Settings > Access Token)")
    return token


def auth_kind(token: str, extra: dict) -> str:
    """'token' (legacy, sent as is) or 'pat' (a JWT refresh token); extra ``auth`` forces one."""
    forced = (extra or {}).get("auth")
    if forced:
        if forced not in ("token", "pat"):
            raise LabelStudioConnectionError(f"connection extra 'auth' must be 'token' or 'pat', got {forced!r}")
        return forced
    return "pat" if token.startswith("eyJ") and token.count(".") == 2 else "token"


@dataclass
class TokenAuth:
    """The connection's token, its kind decided once, and (for a personal access token) the access token.

    A personal access token is a refresh token: it is exchanged at `REFRESH_PATH` for an access token that
    lasts about 5 minutes, so the access token is fetched on first use and again when a request answers 401.
    """

    token: str
    kind: str  # "token" | "pat"
    access: str | None = None

    @classmethod
    def of(cls, conn) -> "TokenAuth":
        token = token_of(conn)
        return cls(token, auth_kind(token, conn.extra_dejson))

    @property
    def personal(self) -> bool:
        return self.kind == "pat"

    def needs_access(self, refresh: bool) -> bool:
        """Whether an access token must be fetched before the next request."""
        return self.personal and (refresh or self.access is None)

    def refresh_body(self) -> dict:
        return {"refresh": self.token}

    def take_access(self, body) -> None:
        if not (isinstance(body, dict) and body.get("access")):
            raise LabelStudioUnexpectedAnswer(f"{REFRESH_PATH} answered without an access token")
        self.access = body["access"]

    def header(self) -> dict:
        if self.personal:
            return {"Authorization": f"Bearer {self.access}"}
        return {"Authorization": f"Token {self.token}"}

    def retry(self, status: int, attempt: int) -> bool:
        """An expired access token answers 401: refresh it and try once more."""
        return status == 401 and attempt == 1 and self.personal


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
    busy = status >= 500 or status == 429
    kind = LabelStudioNotFound if status == 404 else LabelStudioServerError if busy else LabelStudioError
    return kind(f"Label Studio {method} {path} failed with {status}: {detail}", status)


def unreachable(base_url: str, conn_id: str, exc: Exception, timeout: float | None = None) -> LabelStudioUnreachable:
    why = f"no answer within {timeout}s" if timeout is not None else exc.__class__.__name__
    return LabelStudioUnreachable(
        f"cannot reach Label Studio at {base_url} ({why}); check the host of Airflow connection {conn_id!r} "
        "and that Label Studio is running (bash scripts/labelstudio.sh status)")


def detail_of(text: str, reason: str = "") -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return (text or "")[:200].strip() or reason
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("validation_errors") or body)[:300]
    return str(body)[:300]


def json_of(text: str, *, method: str, path: str, base_url: str):
    """The body of a successful answer; LabelStudioUnexpectedAnswer when it is not JSON (a proxy page, another app)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise LabelStudioUnexpectedAnswer(
            f"{base_url}{path} ({method}) answered something that is not JSON ({text[:80]!r}); "
            "is this the Label Studio base URL?") from exc
