"""Benchmark: merge a synthetic cumulative manifest of 1,000,000 lines with 100,000 new answers.

Data (generated first, not timed): the previous manifest is sorted and canonical (as the merge writes
it), 70% image-level lines with 1-2 labels and 30% box lines with 1-3 boxes, all in one bucket. The
100,000 answers are half re-answers of existing images and half new images, human and auto-accepted
mixed, 10% of them repeated (as a retried sensor produces), in random order.

The previous merge's record (``core.merge_record``: digest and counts) lies beside the previous
manifest, as the merge operator leaves it, so the merge carries the previous lines forward
unvalidated, as it does every turn after the first.

Each merge runs in a child process that reads and writes local files (the operator downloads the
previous manifest to a temporary file and uploads the result), so its peak RSS is the merge's own.

Last line: ``lines_per_s=<input lines (manifest + answers) per second at 1x> peak_rss_mb=<largest
child peak RSS of the 1x and 2x runs> scaling=<time for 2x input divided by time for 1x>``.
Targets: lines_per_s >= 100000, peak_rss_mb <= 1024, scaling <= 2.3.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter

BASE_LINES = 1_000_000
BASE_ANSWERS = 100_000
BUCKET = "bench-images"
LABELS = ["circle", "square", "triangle", "star", "hexagon", "cross", "ring", "arrow"]


def _ref(i: int) -> str:
    return f"s3://{BUCKET}/images/img-{i:08d}.jpg"


def _previous_line(rng: random.Random, i: int) -> tuple[str, set[str]]:
    from rekfeedback.core.manifest import Detection, ImageEntry, ImageLabel, Provenance, build_line

    prov = Provenance(human=rng.random() < 0.8, job_name=f"rekfeedback-turn-{i % 17}",
                      creation_date=f"2026-10-{1 + i % 28:02d}T12:00:00.000000", confidence=1.0)
    entry = ImageEntry(source_ref=_ref(i), width=640, height=480)
    if rng.random() < 0.7:
        entry.labels = [ImageLabel(name, prov) for name in rng.sample(LABELS, rng.randint(1, 2))]
    else:
        boxes = [{"label": rng.choice(LABELS), "left": rng.randint(0, 300), "top": rng.randint(0, 200),
                  "width": rng.randint(20, 300), "height": rng.randint(20, 250)} for _ in range(rng.randint(1, 3))]
        entry.detection = Detection(tuple(boxes), prov)
    boxes = entry.detection.boxes if entry.detection else ()
    return build_line(entry), {label.name for label in entry.labels} | {box["label"] for box in boxes}


def _answer(rng: random.Random, i: int, n: int) -> str:
    human = rng.random() < 0.7
    answer = {"source-ref": _ref(i), "width": 640, "height": 480, "human": human,
              "backend": "ground-truth" if human else "auto-accept", "source": "rekfeedback-bench-job",
              "answered_at": f"2026-11-26T07:{n % 60:02d}:00Z", "workers": 3 if human else 0,
              "agreement": 0.67 if human else 1.0}
    answer["answer_id"] = f"{answer['backend']}-{i:08d}"
    if rng.random() < 0.7:
        labels = rng.sample(LABELS, rng.randint(0, 2))
        answer.update(kind="classification", labels=labels, boxes=[], confirmed=labels[:1], rejected=labels[1:2] and ["cross"],
                      added=labels[1:], adjusted=[])
    else:
        boxes = [{"label": rng.choice(LABELS), "left": rng.randint(0, 300), "top": rng.randint(0, 200),
                  "width": rng.randint(20, 300), "height": rng.randint(20, 250), "status": "adjusted"}
                 for _ in range(rng.randint(1, 3))]
        answer.update(kind="boxes", labels=sorted({b["label"] for b in boxes}), boxes=boxes,
                      confirmed=[], rejected=[], added=[], adjusted=[b["label"] for b in boxes])
    return json.dumps(answer, sort_keys=True, separators=(",", ":"))  # as core.answers.dumps_jsonl writes them


def generate(directory: str, scale: int) -> tuple[str, str, int]:
    rng = random.Random(scale)
    lines, answers = BASE_LINES * scale, BASE_ANSWERS * scale
    previous = os.path.join(directory, f"previous-{scale}x.manifest")
    from rekfeedback.core import merge_record

    digest, label_images = merge_record.Digest(), Counter()
    with open(previous, "w", encoding="utf-8") as out:
        # Even indices are in the manifest; odd ones are new images. Indices sort as strings too.
        for i in range(lines):
            line, labels = _previous_line(rng, 2 * i)
            out.write(line + "\n")
            digest.add(line + "\n")
            label_images.update(labels)
    with open(merge_record.record_key(previous), "w", encoding="utf-8") as out:
        json.dump(merge_record.build(digest.hexdigest(), lines, BUCKET, label_images, 0), out)
    picks = [2 * rng.randrange(lines) if k % 2 == 0 else 2 * rng.randrange(lines) + 1 for k in range(answers)]
    rows = [_answer(rng, i, n) for n, i in enumerate(picks)]
    rows += rng.sample(rows, answers // 10)
    rng.shuffle(rows)
    answers_path = os.path.join(directory, f"answers-{scale}x.jsonl")
    with open(answers_path, "w", encoding="utf-8") as out:
        out.writelines(row + "\n" for row in rows)
    return previous, answers_path, lines + len(rows)


def child(previous: str, answers: str, output_dir: str) -> None:
    from rekfeedback.core import merge_record
    from rekfeedback.core.merge import merge_manifest

    # Machine speed right now (other load slows everything): one json.loads of a typical line.
    with open(previous, encoding="utf-8") as f:
        sample = f.readline()
    calib = time.perf_counter()
    for _ in range(20_000):
        json.loads(sample)
    json_us = (time.perf_counter() - calib) / 20_000 * 1e6
    start, cpu_start = time.perf_counter(), time.process_time()
    with open(os.path.join(output_dir, "output.manifest"), "w", encoding="utf-8") as manifest, \
            open(os.path.join(output_dir, "rejects.jsonl"), "w", encoding="utf-8") as rejects, \
            open(answers, encoding="utf-8") as answer_lines:
        summary = merge_manifest(
            answers=[(answers, answer_lines)],
            previous=lambda: open(previous, encoding="utf-8"),
            previous_record=json.load(open(merge_record.record_key(previous), encoding="utf-8")),
            write_manifest=manifest.write,
            write_reject=rejects.write,
        )
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    assert summary["previous"]["carried_forward"], "the bench's record does not match its manifest"
    print(json.dumps({"elapsed": elapsed, "cpu": cpu, "json_loads_us": json_us, "peak_rss_mb": peak_kb / 1024, "manifest_lines": summary["manifest_lines"],
                      "rejects": summary["rejects"], "applied": summary["answers"]["applied"]}))


def run(scale: int, directory: str) -> dict:
    previous, answers, input_lines = generate(directory, scale)
    out = tempfile.mkdtemp(dir=directory)
    proc = subprocess.run([sys.executable, __file__, "--child", previous, answers, out],
                          check=True, capture_output=True, text=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["input_lines"] = input_lines
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            os.remove(path)
    print(f"{scale}x: {input_lines} input lines in {result['elapsed']:.2f} s ({result['cpu']:.2f} s CPU), "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, json.loads of one line "
          f"{result['json_loads_us']:.1f} us, peak RSS {result['peak_rss_mb']:.0f} MB, "
          f"{result['manifest_lines']} manifest lines, {result['applied']} answers applied, {result['rejects']} rejects",
          flush=True)
    return result


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="rekfeedback-bench-") as directory:
        one = run(1, directory)
        two = run(2, directory)
    lines_per_s = one["input_lines"] / one["elapsed"]
    peak = max(one["peak_rss_mb"], two["peak_rss_mb"])
    # Wall time is what the targets are about; CPU time shows what other load on the machine cost.
    print(f"cpu_lines_per_s={one['input_lines'] / one['cpu']:.0f} cpu_scaling={two['cpu'] / one['cpu']:.2f}")
    print(f"lines_per_s={lines_per_s:.0f} peak_rss_mb={peak:.0f} scaling={two['elapsed'] / one['elapsed']:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()
