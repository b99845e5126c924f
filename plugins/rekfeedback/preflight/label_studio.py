"""Preflight: Label Studio reachable and the token accepted."""

from __future__ import annotations

from rekfeedback.preflight.checker import Checker


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
    from rekfeedback.hooks.label_studio import LabelStudioError, LabelStudioUnreachable

    url = target.url.rstrip("/")
    hook = target.client()
    try:
        body = hook.version()
    except LabelStudioUnreachable as exc:
        cause = exc.__cause__ or exc
        report.error("labelstudio", url, f"Label Studio cannot be reached ({type(cause).__name__}: {cause})",
                     f"check the host of connection {conn_id!r} and that Label Studio is running "
                     "(bash scripts/labelstudio.sh status)")
        return
    except LabelStudioError as exc:
        status = exc.status or 200
        report.error("labelstudio", url, f"{url}/api/version answered {status}; this does not look like Label "
                                         "Studio", f"check the host (and path) of connection {conn_id!r}")
        return
    report.facts["labelstudio_version"] = (body.get("release") or body.get("version")
                                           or (body.get("label-studio-os-package") or {}).get("version"))
    if not target.token:
        report.error("labelstudio", url, "the connection has no API token",
                     f"put the token in the password of connection {conn_id!r} (Label Studio > Account & Settings)")
        return
    problem = _labelstudio_auth_problem(hook, url)
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


def _labelstudio_auth_problem(hook, url: str) -> tuple[str, bool] | None:
    """(problem, whether the token is to blame) or None when the token is accepted."""
    from rekfeedback.hooks.label_studio import LabelStudioError, LabelStudioTokenRefused, LabelStudioUnreachable

    try:
        hook.check()
    except LabelStudioTokenRefused as exc:
        if exc.personal_access_token:
            return f"the personal access token was refused ({exc.status} from /api/token/refresh)", True
        return f"the API token was refused ({exc.status})", True
    except LabelStudioUnreachable as exc:
        return f"the token could not be checked ({exc})", False
    except LabelStudioError as exc:
        return f"{url}/api/current-user/whoami answered {exc.status}; this is not Label Studio's API", False
    return None
