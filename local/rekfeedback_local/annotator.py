"""A simulated Label Studio annotator: answers a project's tasks through the REST API.

Uses the same worker policies as the Ground Truth emulator (`rekfeedback_local.emulator.policy`:
oracle with an error rate, accept-all, reject-all, careless), or a crew of annotators of different
quality (`--crew "ann=oracle:0.02,dan=careless:0.35"`, policy.parse_crew) from which each task's
annotators are drawn. The oracle's truth comes from the image's S3
user metadata `truth` (written by `rekfeedback_local.synthetic`) or from a mapping given by the caller.

    rekfeedback-local labelstudio-annotate --project 3 --policy oracle --error-rate 0.1 --annotators 3 \
        [--url http://127.0.0.1:8080 --token TOKEN] [--endpoint-url http://127.0.0.1:4566]
    (URL and token default to .labelstudio/env, written by scripts/labelstudio.sh start)

Idempotent: a task that already has `annotators` submitted annotations is left alone, so a re-run
only fills what is missing. Each answer's randomness is seeded by (seed, source-ref, annotator index).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import xml.etree.ElementTree as ET
from typing import Callable, Mapping

from rekfeedback.core import answers as answerlib
from rekfeedback.core import label_studio as lsfmt
from rekfeedback.core.paths import parse_s3_uri
from rekfeedback_local.emulator import policy as policylib

log = logging.getLogger(__name__)


def label_set_of(label_config: str) -> list[str]:
    root = ET.fromstring(label_config)
    return list(dict.fromkeys(el.get("value") for el in root.iter() if el.tag in ("Label", "Choice") and el.get("value")))


def s3_truth_reader(s3_client) -> Callable[[str], dict | None]:
    """Truth from the object's user metadata `truth` (JSON, pixels), None when absent."""
    def read(source_ref: str) -> dict | None:
        uri = parse_s3_uri(source_ref, "source-ref")
        meta = s3_client.head_object(Bucket=uri.bucket, Key=uri.key).get("Metadata") or {}
        raw = meta.get("truth")
        return json.loads(raw) if raw else None
    return read


def _for_kind(answer: dict | None, kind: str) -> dict | None:
    """A classification project has no boxes: their labels become image-level labels."""
    if answer is None or kind == "boxes":
        return answer
    norm = policylib.normalize(answer)
    return {"labels": norm["labels"], "boxes": []}


def shown_item(task: dict) -> dict:
    """The review item as the task shows it to an annotator: what a simulated one works from (the
    provider's collect step joins to review/items.jsonl instead)."""
    data = task.get("data") or {}
    return {"source-ref": lsfmt.task_ref(task), "width": data.get("width"), "height": data.get("height"),
            "kind": data.get("kind") or "classification", "route": data.get("route"),
            "predicted": data.get("predicted") or []}


def annotate_project(hook, project_id: int, *, policy: str = "oracle", error_rate: float = 0.0, seed: int = 0,
                     annotators: int = 1, truth: Mapping[str, dict] | Callable[[str], dict | None] | None = None,
                     limit: int | None = None, crew: str = "") -> dict:
    """Answer every task of the project up to `annotators` annotations each; returns counts.

    With a `crew`, each task's annotators are drawn from it (seeded by the task's image)."""
    members = policylib.parse_crew(crew)
    if policy not in policylib.POLICIES:
        raise ValueError(f"unknown policy {policy!r}; use one of {', '.join(policylib.POLICIES)}")
    if annotators < 1:
        raise ValueError(f"annotators must be at least 1, got {annotators}")
    truth_of = truth if callable(truth) else (lambda ref, t=truth or {}: t.get(ref))
    project = hook.get_project(project_id)
    label_set = label_set_of(project["label_config"])
    counts = {"tasks": 0, "created": 0, "skipped": 0}
    for task in hook.list_tasks(project_id):
        counts["tasks"] += 1
        have = len(lsfmt.valid_annotations(task))
        if have >= annotators:
            counts["skipped"] += 1
            continue
        item = shown_item(task)
        w, h, kind = item["width"], item["height"], item["kind"]
        predicted = {"labels": [p["name"] for p in item["predicted"]],
                     "boxes": answerlib.predicted_pixel_boxes(item) if kind == "boxes" else []}
        needs_truth = policy == "oracle" or any(m.policy in ("oracle", "careless") for m in members)
        image_truth = _for_kind(truth_of(item["source-ref"]) if needs_truth else None, kind)
        who = policylib.assign(members, annotators, random.Random(f"{seed}\x00{item['source-ref']}")) if members \
            else [policylib.Annotator(f"annotator-{k}", policy, error_rate) for k in range(annotators)]
        for k in range(have, annotators):
            if limit is not None and counts["created"] >= limit:
                return counts
            # Label Studio counts distinct annotators toward a task's maximum_annotations: each
            # simulated annotator is its own user (the token's user when there is only one).
            fields = {"completed_by": user_id(hook, who[k].name)} if annotators > 1 else {}
            rng = random.Random(f"{seed}\x00{item['source-ref']}\x00{k}")
            answer = who[k].answer(image_truth, predicted, rng, label_set=label_set,
                                   image_size=(w, h) if w and h else None)
            hook.create_annotation(task["id"], lsfmt.answer_result(_for_kind(answer, kind), w, h, kind), **fields)
            counts["created"] += 1
    log.info("simulated annotator on project %s: %s", project_id, counts)
    return counts


_USERS: dict[tuple[str, str], int] = {}


def user_id(hook, name: str) -> int:
    """The id of the simulated annotator `name` (user `<name>@annotators.rekfeedback.local`), created once."""
    email = f"{name}@annotators.rekfeedback.local"
    key = (str(getattr(hook, "base_url", "")), email)
    if key not in _USERS:
        users = hook.request("GET", "/api/users/")
        found = next((u["id"] for u in users if u.get("email") == email), None)
        if found is None:
            import secrets

            found = hook.request("POST", "/api/users/", json={"email": email, "username": name,
                                                              "password": secrets.token_urlsafe(16)})["id"]
        _USERS[key] = int(found)
    return _USERS[key]


def _direct_hook(url: str, token: str):
    """LabelStudioHook on a URL and a token (the CLI has no Airflow connection)."""
    from rekfeedback.hooks.label_studio import LabelStudioHook

    return LabelStudioHook.for_url(url, token)


def run_in_background(url: str, token: str, *, policy: str = "oracle", error_rate: float = 0.0, seed: int = 0,
                      annotators: int | None = 1, interval: float = 1.0, endpoint_url: str | None = None,
                      truth: Mapping[str, dict] | Callable[[str], dict | None] | None = None,
                      include_existing: bool = False, crew: str = "") -> Callable[[], dict]:
    """Answer new tasks as they arrive, in a daemon thread, until the returned `stop()` is called.

    `annotators=None` gives each project as many annotations per task as it asks for (its
    `maximum_annotations`: three in a first round with workers_per_object=3, one in the review round).

    Polls the server every `interval` seconds and answers every project that appeared after the
    call (or every project with `include_existing`), so a DAG run's project is answered while its
    sensor waits and the projects of other runs on a shared server are left alone. The oracle's
    truth is read from the images' S3 metadata (`endpoint_url`, default: boto3's own resolution)
    unless `truth` is given. `stop()` returns `{"created": annotations, "errors": failed polls}`.
    """
    import threading

    if policy not in policylib.POLICIES:
        raise ValueError(f"unknown policy {policy!r}; use one of {', '.join(policylib.POLICIES)}")
    hook = _direct_hook(url, token)
    policylib.parse_crew(crew)  # a bad crew fails here, not in the thread
    if truth is None and (policy == "oracle" or crew):
        import boto3

        truth = s3_truth_reader(boto3.client("s3", endpoint_url=endpoint_url))
    ignored = set() if include_existing else {p["id"] for p in hook.list_projects()}
    stopping = threading.Event()
    totals = {"created": 0, "errors": 0}

    def loop() -> None:
        while not stopping.is_set():
            try:
                for project in hook.list_projects():
                    if project["id"] in ignored or stopping.is_set():
                        continue
                    counts = annotate_project(hook, project["id"], policy=policy, error_rate=error_rate, seed=seed,
                                              annotators=annotators or int(project.get("maximum_annotations") or 1),
                                              truth=truth, crew=crew)
                    totals["created"] += counts["created"]
            except Exception as exc:  # noqa: BLE001 - a server restarting, a project deleted: try again next poll
                totals["errors"] += 1
                log.warning("simulated annotator: %s (retrying in %s s)", exc, interval)
            stopping.wait(interval)

    thread = threading.Thread(target=loop, name="labelstudio-annotator", daemon=True)
    thread.start()

    def stop() -> dict:
        stopping.set()
        thread.join(timeout=max(30.0, interval * 5))
        return dict(totals)

    return stop


def _env_file(path: str) -> dict:
    out = {}
    try:
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.strip().split("=", 1)
                    out[k] = v
    except FileNotFoundError:
        pass
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, help="Label Studio URL (default: LABEL_STUDIO_URL from --env-file)")
    p.add_argument("--token", default=None, help="API token, legacy or personal access token (default: from --env-file)")
    p.add_argument("--env-file", default=".labelstudio/env", help="written by scripts/labelstudio.sh start")
    p.add_argument("--project", type=int, required=True, help="project id")
    p.add_argument("--policy", default="oracle", choices=policylib.POLICIES)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--annotators", type=int, default=1, help="annotations per task")
    p.add_argument("--crew", default="", help='annotators of different quality, e.g. "ann=oracle:0.02,dan=careless:0.35"')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--endpoint-url", default=None, help="S3 endpoint (the emulator) to read the images' truth from")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    env = _env_file(args.env_file)
    url, token = args.url or env.get("LABEL_STUDIO_URL"), args.token or env.get("LABEL_STUDIO_TOKEN")
    if not url or not token:
        print(f"give --url and --token, or start Label Studio so that {args.env_file} exists", file=sys.stderr)
        return 2
    truth = None
    if args.policy == "oracle" or args.crew:
        import boto3

        truth = s3_truth_reader(boto3.client("s3", endpoint_url=args.endpoint_url))
    try:
        counts = annotate_project(_direct_hook(url, token), args.project, policy=args.policy,
                                  error_rate=args.error_rate, seed=args.seed, annotators=args.annotators, truth=truth,
                                  crew=args.crew)
    except Exception as exc:  # a CLI: one line saying what went wrong
        print(f"rekfeedback-local labelstudio-annotate: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(counts))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rekfeedback-local labelstudio-annotate", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
