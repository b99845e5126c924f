"""The custom verification task's worker side: task input, worker answers, the workers' vote.

What the two Lambdas run (lambdas/), so it imports only `core.consensus`: the Lambda bundle packs
this module and what it imports, nothing of the provider's records (contract: docs/contracts.md).
"""

from __future__ import annotations

import json

from rekfeedback.core import consensus as consensuslib


def pre_annotation(data_object: dict) -> dict:
    """Task input of the custom verification task for one manifest line (team contract)."""
    images = data_object.get("images")
    if not isinstance(images, list) or not images:
        raise ValueError(f"data object {data_object.get('source')!r} has no 'images' list")
    labels = data_object.get("labels")
    if not labels:
        labels = sorted({p["name"] for i in images for p in i.get("predicted") or []})
    return {
        "taskInput": {
            "batch": data_object.get("source"),
            "images": [{"source-ref": i["source-ref"], "width": i.get("width"), "height": i.get("height"),
                        "predicted": list(i.get("predicted") or [])} for i in images],
            "labels": list(labels),
        },
        "isHumanAnnotationRequired": "true",
    }


def worker_answer(content) -> dict:
    """A worker's answerContent in any accepted form -> `{"images": [...]}`.

    Forms: the parsed answer; `{"answer": "<json>"}` as the crowd-form posts it; `{"answer": {...}}`;
    a JSON string of any of those.
    """
    value = content
    for _ in range(3):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"worker answer is not JSON: {exc.msg}") from exc
        elif isinstance(value, dict) and "images" not in value and "answer" in value:
            value = value["answer"]
        else:
            break
    if not isinstance(value, dict) or not isinstance(value.get("images"), list):
        raise ValueError("worker answer has no 'images' list")
    return value


def image_final_labels(image_answer: dict) -> tuple[list[str], list[str]]:
    """(predicted names judged, final labels) of one image in one worker's answer.

    A predicted label without a verdict keeps the model's call: the template pre-ticks every
    prediction, so a worker who leaves it alone has confirmed it.
    """
    verdicts = image_answer.get("verdicts") or []
    judged = [v["name"] for v in verdicts if isinstance(v, dict) and v.get("name")]
    final = [v["name"] for v in verdicts if isinstance(v, dict) and v.get("name") and v.get("present", True)
             not in (False, "false", "no", 0)]
    final += [a for a in image_answer.get("added") or [] if isinstance(a, str) and a]
    return judged, sorted(set(final))


def consolidate_object(worker_contents: list, images: list[dict] | None = None) -> dict:
    """One data object's consolidated annotation from its workers' answers (`core.consensus`).

    `images` (the input line's images, if Ground Truth passed them) fixes the order and supplies
    predictions nobody judged. Returns the label-attribute value of the team contract, with each
    image's own `workers` and `agreement` as well. It votes only: the collect step diffs the vote
    against the review item's prediction (`core.answers.diff_labels`), the one place a diff is made.
    """
    answers = [worker_answer(c) for c in worker_contents]
    order: list[str] = [i["source-ref"] for i in images or []]
    predicted: dict[str, list[str]] = {i["source-ref"]: [p["name"] for p in i.get("predicted") or []]
                                       for i in images or []}
    per_image: dict[str, list[list[str]]] = {}
    for answer in answers:
        for image in answer["images"]:
            ref = image.get("source-ref")
            if not ref:
                continue
            judged, final = image_final_labels(image)
            if ref not in order:
                order.append(ref)
            predicted.setdefault(ref, [])
            predicted[ref] = list(dict.fromkeys(predicted[ref] + judged))
            per_image.setdefault(ref, []).append(final)
    out_images, agreements = [], []
    for ref in order:
        finals = per_image.get(ref, [])
        if not finals:
            out_images.append({"source-ref": ref, "labels": [], "workers": 0, "agreement": 0.0})
            continue
        voted = consensuslib.consolidate([{"labels": f} for f in finals], kind="classification",
                                         predicted_labels=predicted[ref])
        out_images.append({"source-ref": ref, "labels": voted["labels"],
                           "workers": voted["workers"], "agreement": voted["agreement"],
                           "label_agreement": voted["consensus"]["label_agreement"],
                           "candidates": voted["consensus"]["candidates"]})
        agreements.append(voted["agreement"])
    return {"images": out_images, "workers": len(answers),
            "agreement": round(sum(agreements) / len(agreements), 4) if agreements else 0.0}
