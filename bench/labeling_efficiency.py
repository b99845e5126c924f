"""Labeling efficiency: F1 against cumulative human reviews, per review-selection strategy.

Turns of the loop on the emulator, over real HTTP through boto3: each turn new images arrive, the
current version predicts every candidate (DetectCustomLabels with the signals kept as inference keeps
them: core.signals), core.selection picks what humans review under the same budget for every
strategy, the simulated workforce (the emulator's oracle, with mistakes) answers, and the next
version trains on everything labelled so far and is scored by the emulator on a fixed TEST set.
Images not selected stay candidates for later turns. `all` reviews every new image.

The pool is one where selection can matter and which the tests do not tune to: 9 shapes, one rare
(cross, about 3% of objects), bursts of near-duplicates (the same scene shot again: shifted by a pixel
or two, brighter or darker, re-encoded) and hard examples (small, strongly stretched shapes).

Prints one row per strategy and turn, then:
  reviews_ratio=<reviews `balanced` needs to reach (within 0.01) the F1 `all` reaches after T turns>
                / <reviews `all` used in T turns>
  f1_gain_vs_random=<F1 of balanced minus F1 of random after T turns, at equal reviews>
  rare_class_recall=<recall of the rare class on TEST by balanced's model after T turns>

Drives core + emulator directly rather than the DAG (the DAG's own path is covered by the tests), so
it finishes in a few minutes: python bench/labeling_efficiency.py [--turns 5] [--budget 18] ...
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import boto3
from PIL import Image, ImageChops, ImageEnhance

from rekfeedback.core import predictions as preds
from rekfeedback.core import selection, signals
from rekfeedback.core.review import RoutingPolicy
from rekfeedback_local import synthetic
from rekfeedback_local.emulator import policy as workforce
from rekfeedback_local.emulator.cli import start_in_thread

RARE = "cross"
STRATEGIES = ("all", "random", "uncertainty", "balanced")
DEFAULT = "balanced"
SIZES = ((160, 120), (200, 150), (240, 180))  # small images: the model analyses at 128 px anyway


# --- the pool -----------------------------------------------------------------------------------

def _near_duplicate(rng: random.Random, img, stem: str):
    """The same scene again: a shift of up to 2 px, a little brighter or darker, encoded anew."""
    dx, dy = rng.randint(-2, 2), rng.randint(-2, 2)
    pic = ImageChops.offset(Image.open(io.BytesIO(img.body)).convert("RGB"), dx, dy)
    pic = ImageEnhance.Brightness(pic).enhance(rng.uniform(0.93, 1.07))
    out = io.BytesIO()
    pic.save(out, "JPEG", quality=rng.choice((80, 88, 95)))
    boxes = [{**b, "left": max(0, b["left"] + dx), "top": max(0, b["top"] + dy)} for b in img.truth["boxes"]]
    return synthetic.SyntheticImage(f"{stem}.jpg", img.width, img.height, "jpeg", out.getvalue(),
                                    {"labels": img.truth["labels"], "boxes": boxes})


def make_pool(seed: int, turns: int, per_turn: int, dup_share: float, hard_share: float):
    rng = random.Random(seed)
    labels = synthetic.SHAPES
    weights = tuple(0.25 if name == RARE else 1.0 for name in labels)  # 0.25 / 8.25: ~3% of objects
    arrivals = []
    for turn in range(1, turns + 1):
        batch = []
        while len(batch) < per_turn:
            stem = f"bench/pool/t{turn}-{len(batch):04d}"
            img = synthetic.make_image(rng, stem, labels, weights=weights, hard=rng.random() < hard_share, sizes=SIZES)
            batch.append(img)
            if rng.random() < dup_share / 4:  # a burst: 3 to 6 more shots of the same scene
                for k in range(rng.randint(3, 6)):
                    if len(batch) < per_turn:
                        batch.append(_near_duplicate(rng, img, f"{stem}-dup{k}"))
        arrivals.append(batch)
    seeds = [synthetic.make_image(rng, f"bench/seed/s{i:03d}", labels, only=labels[i % len(labels)], sizes=SIZES)
             for i in range(2 * len(labels))]
    test = [synthetic.make_image(rng, f"bench/test/t{i:03d}", labels, weights=weights, hard=rng.random() < hard_share,
                                 sizes=SIZES) for i in range(120)]
    # A few more of the rare class, so its recall on TEST is measured on more than a handful of objects.
    test += [synthetic.make_image(rng, f"bench/test/rare{i:03d}", labels, only=RARE, sizes=SIZES) for i in range(10)]
    return arrivals, seeds, test


# --- the loop's pieces on the emulator ----------------------------------------------------------

class Loop:
    def __init__(self, endpoint: str, region: str, bucket: str, test_manifest: str, min_confidence: float):
        kw = {"endpoint_url": endpoint, "region_name": region}
        self.s3, self.rek = boto3.client("s3", **kw), boto3.client("rekognition", **kw)
        self.bucket, self.test_manifest, self.min_confidence = bucket, test_manifest, min_confidence
        self.project = self.rek.create_project(ProjectName=f"bench-{uuid.uuid4().hex[:8]}")["ProjectArn"]
        self.versions = 0
        self.descriptors: dict[str, tuple[str, int]] = {}

    def put_images(self, images) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda img: self.s3.put_object(Bucket=self.bucket, Key=img.key, Body=img.body), images))

    def train(self, manifest_text: str) -> dict:
        self.versions += 1
        name = f"v{self.versions}"
        key = f"bench/manifests/{name}.manifest"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=manifest_text.encode())
        asset = lambda k: {"GroundTruthManifest": {"S3Object": {"Bucket": self.bucket, "Name": k}}}  # noqa: E731
        arn = self.rek.create_project_version(
            ProjectArn=self.project, VersionName=name, OutputConfig={"S3Bucket": self.bucket, "S3KeyPrefix": "bench/out"},
            TrainingData={"Assets": [asset(key)]}, TestingData={"Assets": [asset(self.test_manifest)]})["ProjectVersionArn"]
        while True:
            desc = self.rek.describe_project_versions(ProjectArn=self.project, VersionNames=[name])["ProjectVersionDescriptions"][0]
            if desc["Status"] != "TRAINING_IN_PROGRESS":
                break
            time.sleep(0.05)
        if desc["Status"] != "TRAINING_COMPLETED":
            raise RuntimeError(f"training {name} ended {desc['Status']}: {desc.get('StatusMessage')}")
        summary_obj = desc["EvaluationResult"]["Summary"]["S3Object"]
        summary = json.loads(self.s3.get_object(Bucket=summary_obj["Bucket"], Key=summary_obj["Name"])["Body"].read())
        recall = {r["Label"]: r["Metrics"]["Recall"] for r in summary["LabelEvaluationResults"]}
        self.rek.start_project_version(ProjectVersionArn=arn, MinInferenceUnits=1)
        return {"arn": arn, "name": name, "f1": desc["EvaluationResult"]["F1Score"], "rare_recall": recall.get(RARE, 0.0)}

    def stop(self, version: dict) -> None:
        self.rek.stop_project_version(ProjectVersionArn=version["arn"])

    def _wait_running(self, version: dict) -> None:
        while self.rek.describe_project_versions(ProjectArn=self.project, VersionNames=[version["name"]])[
                "ProjectVersionDescriptions"][0]["Status"] != "RUNNING":
            time.sleep(0.02)

    def predict(self, version: dict, images) -> list[dict]:
        """Prediction lines with signals, as the inference operator writes them with keep_signals on."""
        self._wait_running(version)
        floor = signals.detect_floor(self.min_confidence)

        def one(img) -> dict:
            response = self.rek.detect_custom_labels(ProjectVersionArn=version["arn"], MinConfidence=floor,
                                                     Image={"S3Object": {"Bucket": self.bucket, "Name": img.key}})
            shown, sig = signals.split_response(response, self.min_confidence, None, floor)
            if img.key not in self.descriptors:  # the image does not change between turns; its descriptor neither
                self.descriptors[img.key] = (signals.image_descriptor(img.body), len(img.body))
            sig["descriptor"], sig["descriptor_bytes"] = self.descriptors[img.key]
            return preds.prediction_line(f"s3://{self.bucket}/{img.key}", width=img.width, height=img.height,
                                         fmt=img.fmt, response={**shown, preds.SIGNALS_KEY: sig}, model=version["arn"],
                                         predicted_at="2026-01-01T00:00:00Z")

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, images))


def review(images, lines_by_ref: dict, error_rate: float, seed: int) -> list:
    """The simulated workforce's answers, as images with the answered truth (what the merge would add)."""
    out = []
    for img in images:
        ref = f"s3://{img.key}"
        line = lines_by_ref.get(img.key) or {}
        predicted = {"boxes": [{"label": lab["name"], **{k: round(v * (img.width if k in ("left", "width") else img.height))
                                                          for k, v in lab["box"].items()}}
                               for lab in line.get("labels") or [] if lab.get("box")]}
        answer = workforce.worker_answer(img.truth, predicted, "oracle", random.Random(f"{seed}:{ref}"),
                                         error_rate=error_rate, label_set=synthetic.SHAPES,
                                         image_size=(img.width, img.height))
        out.append(SimpleNamespace(key=img.key, width=img.width, height=img.height, truth=answer))
    return out


def run_strategy(loop: Loop, strategy: str, arrivals, seeds, v1: dict, args, reach: float | None) -> list[dict]:
    labelled = list(seeds)
    counts: dict[str, int] = {}
    for img in seeds:
        for b in img.truth["boxes"]:
            counts[b["label"]] = counts.get(b["label"], 0) + 1
    candidates: dict[str, object] = {}
    version, reviews, rows = v1, 0, []
    limit = None if strategy == "all" else args.budget
    policy = selection.SelectionPolicy(strategy=strategy, budget=limit, seed=args.seed)
    max_turns = args.turns if strategy != DEFAULT or reach is None else args.turns * 3
    turn = 0
    while turn < max_turns:
        turn += 1
        if turn <= len(arrivals):
            candidates.update({img.key: img for img in arrivals[turn - 1]})
        if not candidates:
            break
        lines = loop.predict(version, list(candidates.values()))
        chosen = selection.select(lines, RoutingPolicy(label_unpredicted=True), policy, counts)
        picked = [line for line in chosen.for_review if line.get("selection")]
        keys = [line["source-ref"].split("/", 3)[3] for line in picked]
        answered = review([candidates[k] for k in keys], {k: line for k, line in zip(keys, picked)},
                          args.error_rate, args.seed)
        for key in keys:
            del candidates[key]
        for img in answered:
            for b in img.truth["boxes"]:
                counts[b["label"]] = counts.get(b["label"], 0) + 1
        labelled.extend(answered)
        reviews += len(answered)
        loop.stop(version)
        version = loop.train(synthetic.manifest(loop.bucket, labelled, "detection"))
        rows.append({"strategy": strategy, "turn": turn, "reviews": reviews, "f1": version["f1"],
                     "rare_recall": version["rare_recall"], "deferred": len(candidates),
                     "reasons": chosen.summary()["by_reason"]})
        print(f"{strategy:<12} turn {turn:>2}  reviews {reviews:>4}  F1 {version['f1']:.4f}  "
              f"{RARE} recall {version['rare_recall']:.2f}  deferred {len(candidates):>4}  {rows[-1]['reasons']}",
              flush=True)
        if reach is not None and turn >= args.turns and version["f1"] >= reach - 0.01:
            break
    loop.stop(version)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5, help="turns with new images (T)")
    parser.add_argument("--per-turn", type=int, default=60, help="new images per turn")
    parser.add_argument("--budget", type=int, default=18, help="images humans review per turn (not for `all`)")
    parser.add_argument("--dup-share", type=float, default=0.35, help="share of new images that start a burst")
    parser.add_argument("--hard-share", type=float, default=0.25)
    parser.add_argument("--error-rate", type=float, default=0.02, help="simulated workers' share of wrong answers")
    parser.add_argument("--min-confidence", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.monotonic()
    emulator = start_in_thread(training_seconds=0.0, start_seconds=0.0, stop_seconds=0.0, capacity_per_unit=100000.0)
    os.environ.update(emulator.client_environment())  # the emulator's dummy credentials
    try:
        arrivals, seeds, test = make_pool(args.seed, args.turns, args.per_turn, args.dup_share, args.hard_share)
        s3 = boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name=emulator.region)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="bench/manifests/test.manifest",
                      Body=synthetic.manifest(bucket, test, "detection").encode())
        loop = Loop(emulator.endpoint_url, emulator.region, bucket, "bench/manifests/test.manifest", args.min_confidence)
        loop.put_images([*seeds, *test, *(img for batch in arrivals for img in batch)])
        pool = [img for batch in arrivals for img in batch]
        rare = sum(b["label"] == RARE for img in pool for b in img.truth["boxes"])
        objects = sum(len(img.truth["boxes"]) for img in pool)
        print(f"pool: {len(pool)} images in {args.turns} turns, {objects} objects, {len(synthetic.SHAPES)} classes, "
              f"{RARE} {100 * rare / objects:.1f}% of objects; budget {args.budget} images per turn; "
              f"seed set {len(seeds)}, TEST {len(test)}", flush=True)
        v1 = loop.train(synthetic.manifest(bucket, seeds, "detection"))
        print(f"v1 (seed set): F1 {v1['f1']:.4f}", flush=True)
        results = {"all": run_strategy(loop, "all", arrivals, seeds, v1, args, None)}
        target = results["all"][-1]["f1"]
        for strategy in ("random", "uncertainty", DEFAULT):
            loop.rek.start_project_version(ProjectVersionArn=v1["arn"], MinInferenceUnits=1)
            results[strategy] = run_strategy(loop, strategy, arrivals, seeds, v1, args,
                                             target if strategy == DEFAULT else None)
    finally:
        emulator.stop()

    all_reviews = results["all"][-1]["reviews"]
    reached = next((r["reviews"] for r in results[DEFAULT] if r["f1"] >= target - 0.01), None)
    at_t = {s: next(r for r in rows if r["turn"] == min(args.turns, rows[-1]["turn"])) for s, rows in results.items()}
    print()
    print("strategy      reviews  F1 after T turns  rare recall")
    for strategy in STRATEGIES:
        r = at_t[strategy]
        print(f"{strategy:<12} {r['reviews']:>8}  {r['f1']:>16.4f}  {r['rare_recall']:>11.2f}")
    ratio = f"{reached / all_reviews:.3f}" if reached is not None else f">{results[DEFAULT][-1]['reviews'] / all_reviews:.3f}"
    print(f"target F1 (all after {args.turns} turns) {target:.4f}; {DEFAULT} reached it within 0.01 after "
          f"{reached if reached is not None else 'no'} reviews; run took {time.monotonic() - started:.0f}s")
    print(f"reviews_ratio={ratio} f1_gain_vs_random={at_t[DEFAULT]['f1'] - at_t['random']['f1']:+.4f} "
          f"rare_class_recall={at_t[DEFAULT]['rare_recall']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
