"""Benchmark: our inference engine vs the original script's approach, against a capacity-limited model.

    .venv/bin/python bench/inference_throughput.py [--n 2000] [--baseline-n 300]

Starts the emulator in a subprocess (this same script with --serve-emulator), so its request
handling does not compete with the client for the GIL. The model serves C = 40 calls/s (1 inference
unit x capacity_per_unit 40) with L = 0.25 s per call. Our run has 10% of calls throttled at random on
top of the capacity limit; the baseline runs without random throttling (in its favour) and on the
first --baseline-n images only, since at three calls per 0.25 s it would take minutes for 2000
(its rate, not its total, is what is compared). Before the timed runs the emulator's per-image
analysis cache is primed (see `prime`; --cold skips it).

The last line is:
capacity_ratio=<ours images/s / C> baseline_ratio=<baseline images/s / C> median_header_bytes=<...> lost=<...>
where images/s counts images answered by the model, header bytes are the bytes read per image to
learn its size, and lost counts images neither predicted nor recorded as failed.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

CAPACITY = 40.0
LATENCY = 0.25
THROTTLE = 0.10


def serve_emulator(port: int) -> None:
    from rekfeedback_local.emulator.cli import start_in_thread

    handle = start_in_thread("127.0.0.1", port, training_seconds=0.5, start_seconds=0.2, stop_seconds=0.2)
    # The emulator builds a boto3 S3 client per request thread (~0.2 s each); share one (thread-safe).
    shared = handle.env.s3_factory()
    handle.env.s3_factory = lambda: shared
    print("ready", flush=True)
    threading.Event().wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def configure(endpoint: str, **knobs) -> None:
    req = urllib.request.Request(f"{endpoint}/_rekfeedback/config", data=json.dumps(knobs).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req).read()


def stats(endpoint: str) -> dict:
    return json.loads(urllib.request.urlopen(f"{endpoint}/_rekfeedback/stats").read())


def wait_status(rek, project_arn, version, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = rek.describe_project_versions(ProjectArn=project_arn, VersionNames=[version])[
            "ProjectVersionDescriptions"][0]["Status"]
        if status in wanted:
            return status
        time.sleep(0.1)
    raise RuntimeError(f"model still {status}")


def setup_model(s3, rek, n: int, bucket: str) -> tuple[str, dict]:
    from rekfeedback_local import synthetic

    data = synthetic.generate(s3, bucket, "bench", n=n, n_seed=8, n_test=20, seed=5)
    project_arn = rek.create_project(ProjectName="bench")["ProjectArn"]
    asset = lambda key: {"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": key}}}  # noqa: E731
    arn = rek.create_project_version(
        ProjectArn=project_arn, VersionName="v1", OutputConfig={"S3Bucket": bucket, "S3KeyPrefix": "bench/out"},
        TrainingData={"Assets": [asset("bench/manifests/seed.manifest")]},
        TestingData={"Assets": [asset("bench/manifests/test.manifest")]})["ProjectVersionArn"]
    wait_status(rek, project_arn, "v1", {"TRAINING_COMPLETED"})
    rek.start_project_version(ProjectVersionArn=arn, MinInferenceUnits=1)
    wait_status(rek, project_arn, "v1", {"RUNNING"})
    return arn, data


def list_images(s3, bucket: str, prefix: str) -> list:
    from rekfeedback.core.inference_engine import ImageTask
    from rekfeedback.core.predictions import has_image_extension

    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [ImageTask(f"s3://{bucket}/{o['Key']}", o["Size"]) for o in page.get("Contents", [])
                if has_image_extension(o["Key"])]
    return out


def prime(rek, arn: str, tasks: list) -> None:
    """Have the emulator analyse every image once, at unlimited capacity, before anything is timed.

    The stand-in model decodes and analyses each image on its first call (tens of ms of CPU) on the
    same two cores as the client; Rekognition does that on its own hardware. Priming keeps that
    artefact out of the ratio; --cold measures with it.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(task):
        bucket, key = task.source_ref[5:].split("/", 1)
        try:
            rek.detect_custom_labels(ProjectVersionArn=arn, Image={"S3Object": {"Bucket": bucket, "Name": key}})
        except Exception:  # noqa: BLE001 - corrupt images answer with an error; that is primed too
            pass

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, tasks))


def run_ours(s3, rek, arn: str, tasks: list) -> tuple[float, int, int]:
    from rekfeedback.core.imagesize import probe_image
    from rekfeedback.core.inference_engine import InferenceEngine
    from rekfeedback.core.paths import parse_s3_uri
    from rekfeedback.core.throughput import AdaptiveLimiter
    from rekfeedback.operators.inference import S3RangeReader

    def probe(task):
        ref = parse_s3_uri(task.source_ref)
        return probe_image(S3RangeReader(s3, ref.bucket, ref.key), size=task.size)

    def detect(task, _probe):
        ref = parse_s3_uri(task.source_ref)
        return rek.detect_custom_labels(ProjectVersionArn=arn, Image={"S3Object": {"Bucket": ref.bucket,
                                                                                    "Name": ref.key}})

    log = logging.getLogger("bench.ours")
    engine = InferenceEngine(probe=probe, detect=detect, model=arn, limiter=AdaptiveLimiter(max_concurrency=32),
                             max_workers=32, progress_interval=float(os.environ.get("BENCH_PROGRESS", "10")), max_failed_share=1.0, log=log)
    started = time.monotonic()
    result = engine.run(tasks)
    elapsed = time.monotonic() - started
    answered = sum(1 for line in result.lines if not line["error"])
    wanted = {t.source_ref for t in tasks}
    recorded = {line["source-ref"] for line in result.lines}
    lost = len(wanted - recorded)
    print(f"ours: {len(tasks)} images, {answered} answered, {result.summary['failed']} failed "
          f"{result.summary['errors']}, {result.calls} calls, {result.throttles} throttles, {elapsed:.1f}s, "
          f"{answered / elapsed:.1f} images/s", flush=True)
    return answered / elapsed, result.median_header_bytes, lost


def run_baseline(s3, rek, arn: str, tasks: list) -> float:
    """The original script: threads in batches of three with a barrier, whole-object download for the size."""
    from PIL import Image

    answered = [0]
    lock = threading.Lock()

    def one(task):
        bucket, key = task.source_ref[5:].split("/", 1)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            Image.open(io.BytesIO(body)).size
        except Exception:  # noqa: BLE001 - the original aborted here; we keep going to measure the rate
            return
        for _ in range(10):
            try:
                rek.detect_custom_labels(ProjectVersionArn=arn, Image={"S3Object": {"Bucket": bucket, "Name": key}})
                with lock:
                    answered[0] += 1
                return
            except rek.exceptions.ProvisionedThroughputExceededException:
                time.sleep(1.0)
            except rek.exceptions.InvalidImageFormatException:
                return

    started = time.monotonic()
    for i in range(0, len(tasks), 3):
        threads = [threading.Thread(target=one, args=(t,)) for t in tasks[i:i + 3]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elapsed = time.monotonic() - started
    print(f"baseline: {len(tasks)} images, {answered[0]} answered, {elapsed:.1f}s, {answered[0] / elapsed:.1f} images/s",
          flush=True)
    return answered[0] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="pool images (default 2000; a few corrupt are added)")
    parser.add_argument("--baseline-n", type=int, default=300, help="images the baseline runs on (default 300)")
    parser.add_argument("--cold", action="store_true",
                        help="skip priming the emulator's per-image analysis cache before the measured runs")
    parser.add_argument("--serve-emulator", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        serve_emulator(args.serve_emulator)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, __file__, "--serve-emulator", str(port)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")})
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the emulator subprocess did not start")
        import boto3
        from botocore.config import Config

        cfg = Config(max_pool_connections=48, retries={"total_max_attempts": 1, "mode": "standard"})
        kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing")
        s3 = boto3.client("s3", config=Config(max_pool_connections=48, retries={"max_attempts": 5, "mode": "standard"}), **kw)
        rek = boto3.client("rekognition", config=cfg, **kw)
        configure(endpoint, capacity_per_unit=1000.0, latency=0.0, throttle_rate=0.0)
        arn, data = setup_model(s3, rek, args.n, "bench-images")
        tasks = list_images(s3, data["bucket"], "bench/images/")
        print(f"emulator subprocess at {endpoint}; {len(tasks)} images ({len(data['bad_keys'])} bad objects); "
              f"C={CAPACITY:g}/s L={LATENCY:g}s", flush=True)

        if not args.cold:
            prime(rek, arn, tasks)
        configure(endpoint, capacity_per_unit=CAPACITY, latency=LATENCY, throttle_rate=THROTTLE)
        ours, median_header, lost = run_ours(s3, rek, arn, tasks)
        time.sleep(1.1)  # let the model's one-second window drain
        configure(endpoint, throttle_rate=0.0)
        baseline = run_baseline(s3, rek, arn, tasks[: args.baseline_n])
        print(f"emulator stats: {stats(endpoint)['calls']}", flush=True)
        print(f"capacity_ratio={ours / CAPACITY:.3f} baseline_ratio={baseline / CAPACITY:.3f} "
              f"median_header_bytes={median_header} lost={lost}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
