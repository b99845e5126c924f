"""Preflight: Label Studio reachable and the token accepted."""

from __future__ import annotations

import requests

from rekfeedback.preflight.checker import Checker, LabelStudioTarget

def check_labelstudio(checker: Checker) -> None:
    if checker.ground_truth:
        return
    target, report = checker.labelstudio, checker.report
    conn_id = (target.conn_id if target else None) or checker.config.get("labelstudio_conn_id") or "label_studio_default"
    if target is None or target.error:
        report.error("labelstudio", f"connection {conn_id}",
                     (target.error if target else None) or "no Label Studio connection was given",
                     f"create the Airflow connection {conn_id!r} (conn_type labelstudio, host = URL, password = "
                     "API token)")
        return
    if not target.url:
        report.error("labelstudio", f"connection {conn_id}", "the connection has no URL",
                     "set its host to the Label Studio URL, e.g. http://127.0.0.1:8080")
        return
    url = target.url.rstrip("/")
    session = requests.Session()
    try:
        r = session.get(f"{url}/api/version", timeout=target.timeout)
    except requests.RequestException as exc:
        report.error("labelstudio", url, f"Label Studio cannot be reached ({type(exc).__name__}: {exc})",
                     f"check the host of connection {conn_id!r} and that Label Studio is running "
                     "(bash scripts/labelstudio.sh status)")
        return
    version = None
    try:
        body = r.json() if r.ok else {}
        version = body.get("release") or body.get("version") or (body.get("label-studio-os-package") or {}).get("version")
    except ValueError:
        body = None
    if not r.ok or body is None:
        report.error("labelstudio", url, f"{url}/api/version answered {r.status_code}; this does not look like Label "
                                         "Studio", f"check the host (and path) of connection {conn_id!r}")
        return
    report.facts["labelstudio_version"] = version
    if not target.token:
        report.error("labelstudio", url, "the connection has no API token",
                     f"put the token in the password of connection {conn_id!r} (Label Studio > Account & Settings)")
        return
    problem = _labelstudio_auth_problem(session, url, target)
    if problem and problem[1]:
        report.error("labelstudio", url, problem[0],
                     f"put a valid token in the password of connection {conn_id!r} (Label Studio > Account & "
                     "Settings > Access Token; legacy tokens need LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true)")
        return
    if problem:
        report.error("labelstudio", url, problem[0], f"check the host (and path) of connection {conn_id!r}: it must "
                                                     "be the Label Studio base URL")
        return
    report.ok("labelstudio", url)


def _labelstudio_auth_problem(session, url: str, target: LabelStudioTarget) -> tuple[str, bool] | None:
    """(problem, whether the token is to blame) or None when the token is accepted."""
    token = target.token.strip()
    kind = target.auth or ("pat" if token.startswith("eyJ") and token.count(".") == 2 else "token")
    try:
        if kind == "pat":
            r = session.post(f"{url}/api/token/refresh", json={"refresh": token}, timeout=target.timeout)
            if r.status_code != 200:
                return f"the personal access token was refused ({r.status_code} from /api/token/refresh)", True
            header = {"Authorization": f"Bearer {r.json()['access']}"}
        else:
            header = {"Authorization": f"Token {token}"}
        r = session.get(f"{url}/api/current-user/whoami", headers=header, timeout=target.timeout)
    except (requests.RequestException, ValueError, KeyError) as exc:
        return f"the token could not be checked ({exc})", False
    if r.status_code in (401, 403):
        return f"the API token was refused ({r.status_code}: {r.text[:160]})", True
    if not r.ok:
        return f"{url}/api/current-user/whoami answered {r.status_code}; this is not Label Studio's API", False
    return None
