"""Benchmark: how many wrong human answers the label-noise check catches before training.

Data (seeded, in memory): `--images` images per kind (image-level labels, and boxes), each with one
to three of four shapes as its truth. A simulated model predicts each object with probability 0.9
(confidence 75-99.5 %, boxes a few pixels off) and adds a wrong low-confidence object to one image in
five and a wrong confident one (90-97 %) to one in thirty. The simulated workforce
(`rekfeedback_local.emulator.policy`, the crew the emulator and the Label Studio annotator use) answers
each image with `--workers` annotators drawn from a crew of different quality: two careful, one
average, one careless (`policy.DEFAULT_CREW`). Their mistakes are the injected label errors: an
answer is wrong when it differs from the truth (labels; boxes matched one to one at IoU 0.5).

The check is `core.noise.check` (rules plus cleanlab's confident learning when installed); answers it
flags go to the review round, where one careful reviewer (`oracle`, 2 % errors) answers again.

Prints, per kind and over both, on the same seeds:
``errors_caught=<share of wrong answers flagged> false_flags=<share of correct answers flagged>
f1_with_check=<label F1 of the answers used for training after the review round>
f1_without_check=<label F1 of the answers as given>``.
Goal: errors_caught >= 0.80, false_flags <= 0.10, f1_with_check > f1_without_check.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT / "plugins", ROOT / "local"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from rekfeedback.core import boxes as boxlib  # noqa: E402
from rekfeedback.core import consensus, noise  # noqa: E402
from rekfeedback_local.emulator import policy  # noqa: E402

LABELS = ("circle", "square", "triangle", "star")
REVIEWER = policy.Annotator("reviewer", "oracle", 0.02)


def truth_of(rng: random.Random, kind: str) -> tuple[dict, int, int]:
    width, height = rng.choice(((320, 240), (400, 300), (640, 480)))
    boxes = []
    for name in rng.sample(LABELS, rng.randint(1, 3)):
        for _ in range(20):
            w, h = rng.randint(width // 8, width // 3), rng.randint(height // 8, height // 3)
            box = {"label": name, "left": rng.randint(0, width - w), "top": rng.randint(0, height - h),
                   "width": w, "height": h}
            if all(boxlib.iou(box, b) == 0 for b in boxes):
                boxes.append(box)
                break
    labels = sorted({b["label"] for b in boxes})
    return ({"labels": labels, "boxes": boxes} if kind == "boxes" else {"labels": labels, "boxes": []}), width, height


def prediction_of(rng: random.Random, truth: dict, kind: str, ref: str, width: int, height: int) -> dict:
    objects = truth["boxes"]
    out = []
    for b in objects:
        if rng.random() < 0.9:
            moved = {**b, "left": max(0, b["left"] + rng.randint(-2, 2)), "top": max(0, b["top"] + rng.randint(-2, 2))}
            out.append((b["label"], round(rng.uniform(75, 99.5), 1), moved))
    for share, low, high in ((0.2, 50, 75), (1 / 30, 90, 97)):
        if rng.random() < share:
            name = rng.choice(LABELS)
            w, h = rng.randint(width // 8, width // 4), rng.randint(height // 8, height // 4)
            out.append((name, round(rng.uniform(low, high), 1),
                        {"label": name, "left": rng.randint(0, width - w), "top": rng.randint(0, height - h),
                         "width": w, "height": h}))
    labels = []
    for name, conf, box in out:
        if kind == "boxes":
            labels.append({"name": name, "confidence": conf, "box": boxlib.pixels_to_ratio(box, width, height)})
        elif name not in {x["name"] for x in labels}:
            labels.append({"name": name, "confidence": conf, "box": None})
    return {"source-ref": ref, "width": width, "height": height, "labels": labels}


def predicted_answer(line: dict, kind: str) -> dict:
    if kind != "boxes":
        return {"labels": sorted({p["name"] for p in line["labels"]}), "boxes": []}
    boxes = [{"label": p["name"], **boxlib.ratio_to_pixels(p["box"], line["width"], line["height"])}
             for p in line["labels"]]
    return {"labels": sorted({b["label"] for b in boxes}), "boxes": boxes}


def correct(answer: dict, truth: dict, kind: str) -> bool:
    if kind != "boxes":
        return set(answer["labels"]) == set(truth["labels"])
    return len(answer["boxes"]) == len(truth["boxes"]) == _matches(answer["boxes"], truth["boxes"])


def _matches(found: list[dict], truth: list[dict]) -> int:
    left, hits = list(truth), 0
    for b in found:
        m = next((t for t in left if t["label"] == b["label"] and boxlib.iou(t, b) >= 0.5), None)
        if m is not None:
            left.remove(m)
            hits += 1
    return hits


def f1(pairs: list[tuple[dict, dict]], kind: str) -> float:
    tp = fp = fn = 0
    for answer, truth in pairs:
        if kind == "boxes":
            hit = _matches(answer["boxes"], truth["boxes"])
            tp, fp, fn = tp + hit, fp + len(answer["boxes"]) - hit, fn + len(truth["boxes"]) - hit
        else:
            a, t = set(answer["labels"]), set(truth["labels"])
            tp, fp, fn = tp + len(a & t), fp + len(a - t), fn + len(t - a)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def run(kind: str, images: int, workers: int, seed: int, use_cleanlab: bool) -> dict:
    rng = random.Random(f"{seed}:{kind}")
    crew = policy.parse_crew(policy.DEFAULT_CREW)
    answers, truths, predictions = [], {}, {}
    for i in range(images):
        ref = f"s3://bench/{kind}/img-{i:05d}.jpg"
        truth, width, height = truth_of(rng, kind)
        line = prediction_of(rng, truth, kind, ref, width, height)
        predicted = predicted_answer(line, kind)
        given = [m.answer(truth, predicted, rng, LABELS, (width, height)) for m in policy.assign(crew, workers, rng)]
        voted = consensus.consolidate(given, kind=kind, predicted_labels=predicted["labels"],
                                      predicted_boxes=predicted["boxes"])
        given_wrong = sum(not correct(policy.normalize(g) if kind == "boxes" else g, truth, kind) for g in given)
        answers.append({"given_wrong": given_wrong, "source-ref": ref, "kind": kind, "width": width, "height": height, "human": True,
                        "labels": voted["labels"], "boxes": voted["boxes"], "workers": workers,
                        "agreement": voted["agreement"],
                        "consensus": consensus.record(voted["consensus"], workers, voted["agreement"], 0.6)})
        truths[ref], predictions[ref] = truth, line
    result = noise.check(answers, predictions, use_cleanlab=use_cleanlab)
    flagged = {f["source-ref"] for f in result["flags"]}
    wrong = {a["source-ref"] for a in answers if not correct(a, truths[a["source-ref"]], kind)}
    right = {a["source-ref"] for a in answers} - wrong
    reviewed = []
    for a in answers:
        ref = a["source-ref"]
        if ref in flagged:
            again = REVIEWER.answer(truths[ref], predicted_answer(predictions[ref], kind), rng, LABELS,
                                    (a["width"], a["height"]))
            a = {**a, **policy.normalize(again)} if kind == "boxes" else {**a, "labels": again["labels"]}
        reviewed.append((a, truths[ref]))
    # Worker level: a wrong worker answer is stopped when it is outvoted (the consolidated answer is
    # right) or its image goes to the review round.
    injected = sum(a["given_wrong"] for a in answers)
    stopped = sum(a["given_wrong"] for a in answers if a["source-ref"] in flagged or a["source-ref"] in right)
    return {"injected": injected, "stopped": stopped,
            "kind": kind, "wrong": len(wrong), "right": len(right), "caught": len(wrong & flagged),
            "false": len(right & flagged), "f1_with": f1(reviewed, kind),
            "f1_without": f1([(a, truths[a["source-ref"]]) for a in answers], kind), "cleanlab": result["cleanlab"]}


def line(r: dict) -> str:
    caught = r["caught"] / r["wrong"] if r["wrong"] else 1.0
    false = r["false"] / r["right"] if r["right"] else 0.0
    return (f"errors_caught={caught:.3f} false_flags={false:.3f} f1_with_check={r['f1_with']:.4f} "
            f"f1_without_check={r['f1_without']:.4f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=400, help="images per kind")
    p.add_argument("--workers", type=int, default=3, help="annotators per image")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--no-cleanlab", action="store_true", help="rules only")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    results = [run(kind, args.images, args.workers, args.seed, not args.no_cleanlab)
               for kind in ("classification", "boxes")]
    for r in results:
        print(f"kind={r['kind']} images={r['wrong'] + r['right']} wrong_answers={r['wrong']} "
              f"wrong_worker_answers={r['injected']} stopped_before_training={r['stopped'] / max(1, r['injected']):.3f} "
              f"cleanlab: {r['cleanlab']}")
        print(f"kind={r['kind']} {line(r)}")
    total = {"wrong": sum(r["wrong"] for r in results), "right": sum(r["right"] for r in results),
             "caught": sum(r["caught"] for r in results), "false": sum(r["false"] for r in results),
             "f1_with": sum(r["f1_with"] for r in results) / len(results),
             "f1_without": sum(r["f1_without"] for r in results) / len(results)}
    print(f"workers_per_object={args.workers} seconds={time.perf_counter() - t0:.1f}")
    print(line(total))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
