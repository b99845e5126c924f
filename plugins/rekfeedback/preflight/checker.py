"""What every preflight check shares: the checker state, the Label Studio target, AWS error helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.exceptions import ClientError

from rekfeedback.core.preflight import Report

SAGEMAKER = "sagemaker.amazonaws.com"
# The rule Ground Truth's worker UI needs on every bucket it shows images from (aws-formats.md 3.3).
GT_CORS_RULE = {"AllowedHeaders": [], "AllowedMethods": ["GET"], "AllowedOrigins": ["*"],
                "ExposeHeaders": ["Access-Control-Allow-Origin"]}
SAGEMAKER_TRUST_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": SAGEMAKER}, "Action": "sts:AssumeRole"}]}
MANIFEST_SUFFIXES = (".manifest", ".jsonl", ".json")
MARKER_NAME = ".rekfeedback-preflight-marker"
MAX_LISTED = 1_000_000  # a prefix with more keys than this is counted as "at least"

# Model version statuses: which ones a turn can use as they are.
USABLE_STATUSES = {"TRAINING_COMPLETED", "STOPPED", "RUNNING", "COPYING_COMPLETED"}
TRANSIENT_STATUSES = {"STARTING", "STOPPING"}


@dataclass
class LabelStudioTarget:
    """Where the Label Studio check looks: URL and token, or why they could not be read from the connection."""

    url: str | None = None
    token: str | None = None
    auth: str | None = None  # "token" | "pat"; None guesses from the token's shape
    conn_id: str = "label_studio_default"
    error: str | None = None  # the connection could not be read (no host, no token, unknown conn id...)
    timeout: float = 10.0
    hook: Any = None  # the connection's LabelStudioHook when there is one (the operator); else one on url/token

    def client(self):
        """The Label Studio client the check talks through: the same hook the review tasks use."""
        if self.hook is None:
            from rekfeedback.hooks.label_studio import LabelStudioHook

            self.hook = LabelStudioHook.for_url(self.url, self.token, auth=self.auth, timeout=self.timeout,
                                                name=self.conn_id)
        return self.hook


@dataclass
class Checker:
    config: dict
    clients: Callable[[str], Any]  # service name -> boto3 client in `region`
    region: str
    dag_id: str
    labelstudio: LabelStudioTarget | None = None
    report: Report = field(default_factory=Report)
    bad_settings: set = field(default_factory=set)
    image_uris: list = field(default_factory=list)  # candidate images (for CORS and role checks)
    new_uris: list = field(default_factory=list)
    labels: list | None = None
    model_kind: str | None = None  # "boxes" | "classification" when the training manifest tells
    role_documents: list | None = None  # readable policies of the GT role
    role_unreadable: list = field(default_factory=list)  # policies that could not be read
    turn_prefix: str | None = None  # this run's prefix: what an earlier try of the same run predicted is still new
    etags: dict = field(default_factory=dict)  # source-ref -> ETag, from the input listing

    def client(self, service: str):
        return self.clients(service)

    @property
    def ground_truth(self) -> bool:
        return self.config.get("review_backend", "ground-truth") == "ground-truth"

    def usable(self, *names: str) -> bool:
        return all(self.config.get(n) and n not in self.bad_settings for n in names)


# --------------------------------------------------------------------------------------- helpers

def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def error_message(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(exc)


def is_denied(exc: ClientError) -> bool:
    return error_code(exc) in ("AccessDenied", "AccessDeniedException", "403", "Forbidden", "UnauthorizedOperation")


def is_not_found(exc: ClientError) -> bool:
    code = error_code(exc)
    return code in ("NoSuchBucket", "NoSuchKey", "404", "NotFound", "NoSuchEntity", "ResourceNotFoundException",
                    "ResourceNotFound") or (code == "ValidationException" and "not exist" in error_message(exc).lower())


def bucket_region(checker: Checker, bucket: str) -> str | None:
    try:
        location = checker.client("s3").get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except ClientError:
        return None
    # Buckets in us-east-1 answer None (or "" from some clients); "EU" is the legacy name of eu-west-1.
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)


def s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{key}"
