"""Benchmark: the inference engine in 1, 2, 4 and 8 shard processes vs what users would write instead.

    .venv/bin/python bench/inference_throughput.py [--n 600] [--shards 1,2,4,8] [--adaptive-n 80] [--baseline-n 60]

One emulator in a subprocess (its request handling does not compete with the clients for a GIL),
one set of synthetic images, one model: C = 40 calls/s (1 inference unit x capacity_per_unit 40),
L = 0.25 s per call, and 10% of the calls throttled at random on top of the capacity limit, for
every run. The per-image analysis cache is primed first (see `prime`; --cold skips it).

Runs, in order, as a loop's turns would:
- "ceiling": 1 shard with no capacity limit and no throttling on --ceiling-n images: what the two cores
  allow the clients and the emulator (on a busy machine, less than C; then the ratios measure the machine);
- "first turn": 1 shard, nothing remembered, probing up from 10 calls/s (printed, not in the last line);
  it remembers the calls/s the model answered it, for this model version and inference units;
- our engine with k = 1, 2, 4 and 8 shards, each shard a separate process (as Celery workers run them),
  all started together, sharing the model through the rate hint under their turn prefix and
  starting from the remembered rate; the checkpoint cadence is the DAG's default (turn_config);
- the original script's way: threads in batches of three with a barrier, whole-object download
  for the size, one-second sleep on a throttle (on the first --baseline-n images: at its rate the
  whole set would take minutes; its rate, not its total, is compared);
- boto3 with retries={"mode": "adaptive", "max_attempts": 10} and a 32-thread pool (--adaptive-n images).

ratio = images answered per second / C; for k shards, all answers over the time from the start
to the last shard's end. fairness_k = the slowest shard's images/s per image of its work / the
fastest's (the shards' shares follow the work each has left, so a shard with more images gets more
of the model and all finish together; per image of work this is first finish / last finish). The
plain images/s ratio is printed too (images_per_s_k), with split_k = fewest / most images a shard got
from the hash split (the plain ratio cannot be above it when the shards finish together). lost =
images of our runs neither predicted nor recorded as failed. Default sizes finish in about three
minutes on two busy cores; a larger --n weighs the ramp and the tail less. --trace prints each
shard's limiter every half second.

Last line: capacity_ratio_1=... capacity_ratio_2=... capacity_ratio_4=... fairness_4=...
adaptive_ratio=... baseline_ratio=... lost=...
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

CAPACITY, LATENCY, THROTTLE = 40.0, 0.25, 0.10
KEYS = dict(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def clients(endpoint: str, pool: int = 48, rek_retries: dict | None = None):
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=endpoint, **KEYS,
                      config=Config(max_pool_connections=pool, retries={"max_attempts": 5, "mode": "standard"}))
    rek = boto3.client("rekognition", endpoint_url=endpoint, **KEYS, config=Config(
        max_pool_connections=pool, retries=rek_retries or {"total_max_attempts": 1, "mode": "standard"}))
    return s3, rek


def serve_emulator(port: int) -> None:
    from rekfeedback_local.emulator.cli import start_in_thread

    handle = start_in_thread("127.0.0.1", port, training_seconds=0.5, start_seconds=0.2, stop_seconds=0.2)
    shared = handle.env.s3_factory()  # one boto3 S3 client for all request threads (~0.2 s to build each)
    handle.env.s3_factory = lambda: shared
    print("ready", flush=True)
    threading.Event().wait()


def configure(endpoint: str, **knobs) -> None:
    req = urllib.request.Request(f"{endpoint}/_rekfeedback/config", data=json.dumps(knobs).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req).read()


def setup_model(s3, rek, n: int, bucket: str) -> tuple[str, dict]:
    from rekfeedback_local import synthetic

    data = synthetic.generate(s3, bucket, "bench", n=n, n_seed=8, n_test=20, seed=5)
    project_arn = rek.create_project(ProjectName="bench")["ProjectArn"]
    asset = lambda key: {"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": key}}}  # noqa: E731
    arn = rek.create_project_version(
        ProjectArn=project_arn, VersionName="v1", OutputConfig={"S3Bucket": bucket, "S3KeyPrefix": "bench/out"},
        TrainingData={"Assets": [asset("bench/manifests/seed.manifest")]},
        TestingData={"Assets": [asset("bench/manifests/test.manifest")]})["ProjectVersionArn"]
    for wanted in ("TRAINING_COMPLETED", "RUNNING"):
        if wanted == "RUNNING":
            rek.start_project_version(ProjectVersionArn=arn, MinInferenceUnits=1)
        while rek.describe_project_versions(ProjectArn=project_arn, VersionNames=["v1"])[
                "ProjectVersionDescriptions"][0]["Status"] != wanted:
            time.sleep(0.1)
    return arn, data


def list_images(s3, bucket: str, prefix: str) -> list[tuple[str, int]]:
    from rekfeedback.core.predictions import has_image_extension

    return [(f"s3://{bucket}/{o['Key']}", o["Size"])
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", []) if has_image_extension(o["Key"])]


def prime(rek, arn: str, images: list) -> None:
    """Have the emulator analyse every image once, at unlimited capacity, before anything is timed.

    The stand-in model decodes each image on its first call (tens of ms of CPU) on the same two cores
    as the clients; Rekognition does that on its own hardware.
    """
    def one(image):
        bucket, key = image[0][5:].split("/", 1)
        try:
            rek.detect_custom_labels(ProjectVersionArn=arn, Image={"S3Object": {"Bucket": bucket, "Name": key}})
        except Exception:  # noqa: BLE001 - corrupt images answer with an error; that is primed too
            pass

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, images))


# --- one shard, in its own process -----------------------------------------------------------------
def shard_worker() -> None:
    """Read the job from stdin, say ready, wait for go, run the engine as the operator does, print the result."""
    job = json.loads(sys.stdin.readline())
    from rekfeedback import turn_config
    from rekfeedback.core import predictions as preds
    from rekfeedback.core.imagesize import probe_image
    from rekfeedback.core.inference_engine import ImageTask, InferenceEngine
    from rekfeedback.core.paths import parse_s3_uri, shard_part_name
    from rekfeedback.core.shard_rates import ShardRates, memory_record, remembered_rate, start_limiter
    from rekfeedback.hooks.loop_store import LoopStore
    from rekfeedback.hooks.s3_range import S3RangeReader

    index, count = job["shard"], job["shards"]
    s3, rek = clients(job["endpoint"], pool=40)
    store = LoopStore(s3)
    tasks = [ImageTask(ref, size) for ref, size in json.loads(Path(job["images"]).read_text())
             if preds.shard_of(ref, count) == index][: job["limit"]]
    turn = parse_s3_uri(job["turn"])
    hint, memory = turn.join("inference", "rate-hint.json"), parse_s3_uri(job["memory"])
    checkpoint = turn.join("predictions", f"{shard_part_name(index, count)}.checkpoint.jsonl")
    defaults = {s.name: s.default for s in turn_config.SETTINGS}

    def probe(task):
        ref = parse_s3_uri(task.source_ref)
        return probe_image(S3RangeReader(s3, ref.bucket, ref.key), size=task.size)

    def detect(task, _probe):
        ref = parse_s3_uri(task.source_ref)
        return rek.detect_custom_labels(ProjectVersionArn=job["arn"],
                                        Image={"S3Object": {"Bucket": ref.bucket, "Name": ref.key}})

    rates = ShardRates(shard=index, shard_count=count, read=lambda: store.read_text(hint),
                       write=lambda text: store.put_text(hint, text))
    remembered = remembered_rate(store.read_text(memory)) if job["remember"] else None
    print("ready", flush=True)
    sys.stdin.readline()
    limiter, _ = start_limiter(rates, remembered, count, initial_rate=job["initial_rate"], max_rate=10_000.0,
                               max_concurrency=32)
    start_rate = limiter.rate
    trace, tracing = [], threading.Event()

    def sample():  # --trace: the shard's limiter every half second
        t0 = time.time()
        while not tracing.wait(0.5):
            trace.append((round(time.time() - t0, 1), round(limiter.rate, 1), limiter.answered, limiter.throttles,
                          limiter.concurrency_limit, limiter.snapshot()["in_flight"], limiter.in_slow_start))
    if job["trace"]:
        threading.Thread(target=sample, daemon=True).start()
    engine = InferenceEngine(
        probe=probe, detect=detect, model=job["arn"], limiter=limiter, shard_rates=rates, max_workers=32,
        checkpoint=lambda lines: store.put_text(checkpoint, preds.dumps_jsonl(lines), "application/x-ndjson"),
        checkpoint_every=int(defaults["checkpoint_images"]), checkpoint_interval=float(defaults["checkpoint_seconds"]),
        progress_interval=3600.0, max_failed_share=1.0)
    result = engine.run(tasks)
    tracing.set()
    finished = time.time()
    if result.model_limit:
        store.put_text(memory, memory_record(result.model_limit))
    recorded = {line["source-ref"] for line in result.lines}
    print(json.dumps({"images": len(tasks), "answered": sum(1 for line in result.lines if not line["error"]),
                      "lost": len({t.source_ref for t in tasks} - recorded), "calls": result.calls,
                      "throttles": result.throttles, "checkpoints": getattr(result, "checkpoints", 0),
                      "start_rate": round(start_rate, 1),
                      "finished": finished, "header_bytes": result.median_header_bytes, "trace": trace}), flush=True)


def run_shards(endpoint: str, arn: str, images_file: str, k: int, turn: str, memory: str, remember: bool,
               limit: int | None = None, trace: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    procs = [subprocess.Popen([sys.executable, __file__, "--shard-worker"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(k)]
    try:
        for i, proc in enumerate(procs):
            proc.stdin.write(json.dumps({"endpoint": endpoint, "arn": arn, "images": images_file, "shard": i,
                                         "shards": k, "turn": turn, "memory": memory, "remember": remember,
                                         "limit": limit, "initial_rate": 1000.0 if limit else 10.0,
                                         "trace": trace}) + "\n")
            proc.stdin.flush()
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a shard process did not start")
        started = time.time()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        shards = [json.loads(proc.stdout.readline()) for proc in procs]
    finally:
        for proc in procs:
            proc.wait(timeout=120)
    elapsed = max(s["finished"] for s in shards) - started
    for step in range(max(len(s["trace"]) for s in shards)):  # --trace: rate/concurrency/in flight, s = slow start
        live = [s["trace"][step] for s in shards if step < len(s["trace"])]
        print("  t=%.1f total_rate=%.1f answered=%d throttles=%d | %s" % (
            live[0][0], sum(r[1] for r in live), sum(r[2] for r in live), sum(r[3] for r in live),
            " ".join(f"{r[1]}/{r[4]}/{r[5]}{'s' if r[6] else ''}" for r in live)), flush=True)
    rates = [s["answered"] / (s["finished"] - started) for s in shards]
    # Per image of its work: a shard with more images takes more of the model (the shares follow the
    # work left, so that all finish together); compared per image, that is first finish / last finish.
    per_work = [r / max(1, s["images"]) for r, s in zip(rates, shards)]
    out = {"k": k, "elapsed": elapsed, "answered": sum(s["answered"] for s in shards),
           "images": sum(s["images"] for s in shards), "lost": sum(s["lost"] for s in shards),
           "calls": sum(s["calls"] for s in shards), "throttles": sum(s["throttles"] for s in shards),
           "checkpoints": sum(s["checkpoints"] for s in shards), "fairness": min(per_work) / max(per_work),
           "raw_fairness": min(rates) / max(rates),
           "split": min(s["images"] for s in shards) / max(s["images"] for s in shards),
           "spread": (max(s["finished"] for s in shards) - min(s["finished"] for s in shards)),
           "header_bytes": shards[0]["header_bytes"]}
    out["ratio"] = out["answered"] / elapsed / CAPACITY
    what = "no capacity limit (the machine's ceiling)" if limit else "" if remember else "first turn (nothing remembered)"
    print(f"ours, {k} shard process(es){', ' + what if what else ''}: "
          f"{out['images']} images, {out['answered']} answered in {elapsed:.1f}s, {out['calls']} calls, "
          f"{out['throttles']} throttles; started at {', '.join(str(s['start_rate']) for s in shards)} calls/s; "
          f"images per shard {', '.join(str(s['images']) for s in shards)}, images/s {', '.join(f'{r:.1f}' for r in rates)}, "
          f"last finished {out['spread']:.1f}s after the first; "
          f"ratio {out['ratio']:.3f}, fairness {out['fairness']:.2f} (load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores)", flush=True)
    return out


# --- what users would write instead -------------------------------------------------------------------
def run_original_script(s3, rek, arn: str, images: list) -> float:
    """start-feedback.py's way: threads in batches of three with a barrier, whole-object download for the size."""
    from PIL import Image

    answered = [0]
    lock = threading.Lock()

    def one(image):
        bucket, key = image[0][5:].split("/", 1)
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
    for i in range(0, len(images), 3):
        threads = [threading.Thread(target=one, args=(image,)) for image in images[i:i + 3]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elapsed = time.monotonic() - started
    print(f"original script (3 threads and a barrier): {len(images)} images, {answered[0]} answered in "
          f"{elapsed:.1f}s", flush=True)
    return answered[0] / elapsed / CAPACITY


def run_adaptive_boto3(endpoint: str, arn: str, images: list) -> float:
    """What a user might write today: botocore's adaptive retry mode (client-side rate limiting), 32 threads."""
    _, rek = clients(endpoint, pool=40, rek_retries={"mode": "adaptive", "max_attempts": 10})
    answered, failed = [0], [0]
    lock = threading.Lock()

    def one(image):
        bucket, key = image[0][5:].split("/", 1)
        try:
            rek.detect_custom_labels(ProjectVersionArn=arn, Image={"S3Object": {"Bucket": bucket, "Name": key}})
            ok = True
        except Exception:  # noqa: BLE001 - bad images, and throttles after the tenth attempt
            ok = False
        with lock:
            answered[0] += ok
            failed[0] += not ok

    started = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(one, images))
    elapsed = time.monotonic() - started
    print(f"boto3 adaptive retries, 32 threads: {len(images)} images, {answered[0]} answered, {failed[0]} failed "
          f"in {elapsed:.1f}s", flush=True)
    return answered[0] / elapsed / CAPACITY


def main() -> None:
    global CAPACITY
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="pool images (default 600; a few corrupt are added)")
    parser.add_argument("--capacity", type=float, default=CAPACITY,
                        help="the model's calls/s (default 40; lower on a machine that cannot make C/0.9 calls/s)")
    parser.add_argument("--shards", default="1,2,4,8", help="shard counts to run (default 1,2,4,8)")
    parser.add_argument("--adaptive-n", type=int, default=80, help="images for boto3 adaptive (default 80)")
    parser.add_argument("--baseline-n", type=int, default=60, help="images for the original script (default 60)")
    parser.add_argument("--ceiling-n", type=int, default=200, help="images for the no-limit run (default 200)")
    parser.add_argument("--cold", action="store_true", help="do not prime the emulator's per-image analysis cache")
    parser.add_argument("--trace", action="store_true", help="print each shard's limiter every half second")
    parser.add_argument("--serve-emulator", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--shard-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        return serve_emulator(args.serve_emulator)
    if args.shard_worker:
        return shard_worker()
    CAPACITY = args.capacity

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, __file__, "--serve-emulator", str(port)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")})
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the emulator subprocess did not start")
        s3, rek = clients(endpoint)
        configure(endpoint, capacity_per_unit=1000.0, latency=0.0, throttle_rate=0.0)
        arn, data = setup_model(s3, rek, args.n, "bench-images")
        images = list_images(s3, data["bucket"], "bench/images/")
        print(f"emulator subprocess at {endpoint}; {len(images)} images ({len(data['bad_keys'])} bad objects); "
              f"C={CAPACITY:g}/s L={LATENCY:g}s random throttling {THROTTLE:.0%}", flush=True)
        if not args.cold:
            prime(rek, arn, images)
        configure(endpoint, capacity_per_unit=CAPACITY, latency=LATENCY, throttle_rate=THROTTLE)
        memory = f"s3://{data['bucket']}/bench/dataset/throughput/v1-units-1-1.json"
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(images, f)
        # What the two cores let one shard and the emulator do with no capacity limit (no throttling):
        # when it is below C, the ratios below measure the machine, not the limiter.
        configure(endpoint, capacity_per_unit=1000.0, throttle_rate=0.0)
        ceiling = run_shards(endpoint, arn, f.name, 1, f"s3://{data['bucket']}/bench/turn-ceiling",
                             memory + ".ceiling", False, limit=args.ceiling_n)
        configure(endpoint, capacity_per_unit=CAPACITY, throttle_rate=THROTTLE)
        time.sleep(1.1)
        runs = {}
        first = run_shards(endpoint, arn, f.name, 1, f"s3://{data['bucket']}/bench/turn-first", memory, False)
        for k in [int(x) for x in args.shards.split(",")]:
            time.sleep(1.1)  # let the model's one-second window drain
            runs[k] = run_shards(endpoint, arn, f.name, k, f"s3://{data['bucket']}/bench/turn-{k}", memory, True,
                                 trace=args.trace)
        os.unlink(f.name)
        time.sleep(1.1)
        adaptive = run_adaptive_boto3(endpoint, arn, images[: args.adaptive_n])
        time.sleep(1.1)
        baseline = run_original_script(s3, rek, arn, images[: args.baseline_n])
        ours = [first, *runs.values()]
        images_done = sum(r["images"] for r in ours)
        print(f"first turn (probing from 10 calls/s): ratio {first['ratio']:.3f}; later turns start from the "
              f"remembered rate", flush=True)
        cpu = ceiling["ratio"]
        print(f"machine ceiling (one shard, no capacity limit): {cpu:.3f} of C; of what the machine allowed: "
              + " ".join(f"{k} shard(s) {r['ratio'] / min(1.0, cpu):.3f}" for k, r in runs.items()), flush=True)
        print(f"checkpoint_puts_per_1000_images={1000 * sum(r['checkpoints'] for r in ours) / images_done:.1f} "
              f"median_header_bytes={first['header_bytes']} "
              + " ".join(f"fairness_{k}={r['fairness']:.3f} images_per_s_{k}={r['raw_fairness']:.3f} "
                         f"split_{k}={r['split']:.3f}" for k, r in runs.items()),
              flush=True)
        line = " ".join(f"capacity_ratio_{k}={r['ratio']:.3f}" for k, r in runs.items())
        print(f"{line} fairness_4={runs[4]['fairness'] if 4 in runs else float('nan'):.3f} "
              f"adaptive_ratio={adaptive:.3f} baseline_ratio={baseline:.3f} lost={sum(r['lost'] for r in ours)}",
              flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
