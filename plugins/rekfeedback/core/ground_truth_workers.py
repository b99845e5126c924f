"""Each worker's own answer from a Ground Truth job's worker responses, for our consolidation.

Built-in box tasks are consolidated by AWS's own function, whose output keeps only the boxes at
least half of the workers drew, with a confidence per kept box: from it alone, three workers who
drew three different things look like a unanimous "no object". Ground Truth also writes every
worker's answer to `<S3OutputPath>/<job>/annotations/worker-response/iteration-<n>/<datasetObjectId>/<time>.json`
(`{"answers": [{"workerId", "answerContent": {"<element name>": {"boundingBoxes": [...]}}}]}`);
`datasetObjectId` is the input manifest line's index. These functions turn those files into
`{"labels", "boxes"}` answers per source-ref, which `core.consensus.consolidate` consolidates.
"""

from __future__ import annotations

import json
import re

from rekfeedback.core.records import iter_jsonl

RESPONSE_KEY = re.compile(r"/annotations/worker-response/iteration-(\d+)/(\d+)/[^/]+\.json$")


def response_prefix(output_path: str, job_name: str) -> str:
    return f"{output_path.rstrip('/')}/{job_name}/annotations/worker-response/"


def latest_responses(keys: list[str]) -> dict[int, str]:
    """datasetObjectId -> the key of its last response file (highest iteration, then latest name)."""
    best: dict[int, tuple] = {}
    for key in keys:
        m = RESPONSE_KEY.search("/" + key.lstrip("/"))
        if m:
            rank = (int(m.group(1)), key)
            obj = int(m.group(2))
            if obj not in best or rank > best[obj]:
                best[obj] = rank
    return {obj: rank[1] for obj, rank in best.items()}


def box_answers(doc, where: str = "worker response") -> list[dict]:
    """Every worker's `{"labels", "boxes"}` (pixels) in one response file of a built-in box task."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    answers = doc.get("answers") if isinstance(doc, dict) else None
    if not isinstance(answers, list):
        raise ValueError(f"{where}: no 'answers' list")
    out = []
    for n, answer in enumerate(answers):
        content = answer.get("answerContent") if isinstance(answer, dict) else None
        if isinstance(content, str):
            content = json.loads(content)
        element = next((v for v in (content or {}).values() if isinstance(v, dict) and "boundingBoxes" in v), None)
        if element is None:
            raise ValueError(f"{where}: answer {n} has no boundingBoxes")
        boxes = [{"label": str(b["label"]), **{k: int(round(float(b[k]))) for k in ("left", "top", "width", "height")}}
                 for b in element.get("boundingBoxes") or []]
        out.append({"labels": sorted({b["label"] for b in boxes}), "boxes": boxes})
    return out


def input_refs(manifest_text: str) -> list[str | None]:
    """source-ref of each input manifest line, by index (the datasetObjectId)."""
    return [line.get("source-ref") for line in iter_jsonl(manifest_text, "input manifest")]
