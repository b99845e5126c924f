"""A demo-like turn (predictions + normalized answers) for the report tests, deterministic."""

from __future__ import annotations

import random

from rekfeedback.core.boxes import pixels_to_ratio

LABELS = ("circle", "square", "triangle")


def demo_turn(n_images: int = 80, seed: int = 7, run: str = "manual-2026-11-26T05-00-00") -> dict:
    """Prediction lines, answer lines and training results shaped like a demo turn's artifacts."""
    rng = random.Random(seed)
    predictions, answers = [], []
    for i in range(n_images):
        ref = f"s3://demo-bucket/images/img-{i:05d}.jpg"
        width, height = rng.choice([(640, 480), (800, 600), (512, 512)])
        if i % 23 == 22:
            predictions.append({"source-ref": ref, "width": None, "height": None, "format": None, "labels": [],
                                "error": {"code": "InvalidImageFormatException", "message": "corrupt"}})
            continue
        labels, boxes = [], []
        for _ in range(rng.randint(0, 2)):
            name = rng.choice(LABELS)
            conf = round(rng.uniform(50, 99.9), 2)
            px = {"left": rng.randint(0, width // 2), "top": rng.randint(0, height // 2),
                  "width": rng.randint(40, width // 2), "height": rng.randint(40, height // 2)}
            labels.append({"name": name, "confidence": conf, "box": pixels_to_ratio(px, width, height)})
            # Calibrated-ish: the more confident, the likelier a human keeps it.
            if rng.random() < conf / 100:
                if rng.random() < 0.3:
                    moved = dict(px, left=px["left"] + rng.randint(3, 20), width=px["width"] + rng.randint(-10, 10))
                    boxes.append({"label": name, **moved, "status": "adjusted"})
                else:
                    boxes.append({"label": name, **px, "status": "unchanged"})
        if rng.random() < 0.15:
            boxes.append({"label": rng.choice(LABELS), "left": 5, "top": 5, "width": 60, "height": 60,
                          "status": "added"})
        predictions.append({"source-ref": ref, "width": width, "height": height, "format": "jpeg",
                            "labels": labels, "error": None,
                            "model": "arn:aws:rekognition:us-east-1:123456789012:project/demo/version/demo.v1/1",
                            "predicted_at": "2026-11-26T05:00:00Z"})
        auto = bool(labels) and min(l["confidence"] for l in labels) > 95
        workers = 1 if auto else rng.choice([1, 3, 3])
        agreement = 1.0 if workers == 1 else rng.choice([1 / 3, 2 / 3, 1.0, 1.0])
        final = boxes if not auto else [{"label": l["name"], "status": "unchanged"} for l in labels]
        answers.append({
            "source-ref": ref, "width": width, "height": height, "kind": "boxes",
            "labels": sorted({b["label"] for b in final}),
            "boxes": [] if auto else boxes,
            "confirmed": [], "rejected": [], "added": [], "adjusted": [],
            "workers": workers, "agreement": agreement, "human": not auto,
            "backend": "auto-accept" if auto else "ground-truth",
            "source": "demo-job", "answered_at": "2026-11-26T07:12:00Z", "answer_id": f"a{i}",
        })
    training = {"new_version_arn": "arn:aws:rekognition:us-east-1:123456789012:project/demo/version/demo.v2/2",
                "f1_before": 0.71, "f1_after": 0.78, "improved": True,
                "per_label": {"circle": 0.8, "square": 0.75, "triangle": 0.7}}
    history = [
        {"turn": {"run": "scheduled-1", "version_arn": "arn:aws:rekognition:us-east-1:1:project/demo/version/demo.v0/0",
                  "f1_before": 0.55, "f1_after": 0.64, "improved": True,
                  "dataset_per_label": {"circle": 20, "square": 18, "triangle": 9}}},
        {"turn": {"run": "scheduled-2", "version_arn": "arn:aws:rekognition:us-east-1:1:project/demo/version/demo.v1/1",
                  "f1_before": 0.64, "f1_after": 0.71, "improved": True,
                  "dataset_per_label": {"circle": 35, "square": 30, "triangle": 21}}},
    ]
    return {"predictions": predictions, "answers": answers, "training": training, "history": history, "run": run}
