"""Emulated Rekognition Custom Labels: DetectCustomLabels and the image reading it needs.
Mixed into `rekognition.RekognitionService`."""

from __future__ import annotations

import hashlib
import time
from typing import Callable

from botocore.exceptions import ClientError

from rekfeedback.core.boxes import pixels_to_ratio
from . import model
from .errors import ApiError
from .rekognition_models import MAX_BYTES_IMAGE, MAX_S3_IMAGE, Version, _FEATURE_CACHE_SIZE


class DetectOperations:
    """DetectCustomLabels of RekognitionService (its lock, env and state)."""

    def DetectCustomLabels(self, params: dict) -> dict:
        image = params["Image"]
        if ("Bytes" in image) == ("S3Object" in image):
            raise ApiError("InvalidParameterException", "Image must contain exactly one of Bytes or S3Object.")
        now = self.env.clock()
        with self.lock:
            v = self._version(params["ProjectVersionArn"])
            v.settle(now)
            if v.status != "RUNNING":
                raise ApiError("ResourceNotReadyException", f"ProjectVersion arn: {v.arn} is not ready. Status: {v.status}")
            if v.scaler is None:
                v.scaler = self._scaler(v.min_units, v.max_units, now)
            scaler = v.scaler
            scaler.per_unit = self.config.capacity_per_unit  # the knob may change while it runs
            throttled = self._rng.random() < self.config.throttle_rate
        served = not throttled and v.limiter.admit(scaler.capacity(now), now)
        if not throttled:
            scaler.record(now, served)  # demand the auto-scaling sees
        if not served:
            raise ApiError("ProvisionedThroughputExceededException",
                           "The number of requests exceeded your throughput limit. Consider adding inference units.")
        self._hold_detect()
        if self.config.latency > 0:
            time.sleep(self.config.latency)  # no lock held: concurrent calls overlap as they do on AWS
        if "Bytes" in image:
            data: bytes = image["Bytes"]
            if len(data) > MAX_BYTES_IMAGE:
                raise ApiError("ImageTooLargeException", "Image size is too large: image bytes must be at most 4 MB.")
            info = self._cached(("bytes", hashlib.sha1(data).hexdigest()), lambda: data)
        else:
            s3obj = image["S3Object"]
            info = self.image_info(s3obj.get("Bucket"), s3obj.get("Name"), s3obj.get("Version"))
        min_conf = params.get("MinConfidence")
        # With an explicit MinConfidence a box's rival labels come back too when they pass it, as on AWS.
        predictions = v.model.predict(info, every_label=min_conf is not None)
        for p in predictions:  # filter on the value the caller sees, so MinConfidence=<a returned value> keeps it
            p["confidence"] = round(p["confidence"], 4)
        if min_conf is None:
            predictions = [p for p in predictions if p["confidence"] >= v.model.thresholds.get(p["name"], 50.0)]
        else:
            predictions = [p for p in predictions if p["confidence"] >= min_conf]
        if params.get("MaxResults") is not None:
            predictions = predictions[: params["MaxResults"]]
        labels = []
        for p in predictions:
            label = {"Name": p["name"], "Confidence": p["confidence"]}
            if p["box"] is not None:
                ratio = pixels_to_ratio(p["box"], info.width, info.height)
                label["Geometry"] = {"BoundingBox": {"Width": ratio["width"], "Height": ratio["height"],
                                                     "Left": ratio["left"], "Top": ratio["top"]}}
            labels.append(label)
        with self.lock:
            self.env.answered["bytes" if "Bytes" in image else
                              f"s3://{image['S3Object'].get('Bucket')}/{image['S3Object'].get('Name')}"] += 1
        return {"CustomLabels": labels}

    def _hold_detect(self) -> None:
        """The `detect_hold_after` knob: let exactly that many calls through, hold the others."""
        with self.lock:
            limit = self.config.detect_hold_after
            if not limit or self.env.detect_admitted < limit:
                self.env.detect_admitted += 1
                return
        while self.config.detect_hold_after and self.env.detect_admitted >= self.config.detect_hold_after:
            time.sleep(0.01)
        raise ApiError("ThrottlingException", "Rate exceeded (held by the emulator's detect_hold_after knob).")

    def image_info(self, bucket: str, key: str, version_id: str | None = None) -> model.ImageInfo:
        """Features of an S3 image, cached by (bucket, key, ETag) so repeated calls cost one HEAD."""
        extra = {"VersionId": version_id} if version_id else {}
        head = self._head(bucket, key, version_id)
        if head is None:
            raise ApiError("InvalidS3ObjectException",
                           "Unable to get object metadata from S3. Check object key, region and/or access permissions.")
        if head.get("ContentLength", 0) > MAX_S3_IMAGE:
            raise ApiError("ImageTooLargeException", f"Image size is too large: s3://{bucket}/{key} is over 15 MB.")

        def fetch() -> bytes:
            try:
                return self.env.s3().get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
            except ClientError:
                raise ApiError("InvalidS3ObjectException", "Unable to get object from S3.")

        return self._cached(("s3", bucket, key, head.get("ETag"), version_id), fetch)

    def _head(self, bucket: str | None, key: str | None, version_id: str | None) -> dict | None:
        """ContentLength and ETag of an object, as a HEAD would answer, from moto's store in this process.

        Every DetectCustomLabels needs them (the analysis cache is keyed by ETag). A HEAD over HTTP to
        our own endpoint costs a boto3 request and moto's request handling per call: on a two-core
        machine, CPU taken from the clients whose throughput is being measured. The emulator's S3 is
        always this process's moto, read with the `testing` keys (`server.make_env`), so the same store
        answers. None: no such bucket, object or version.
        """
        from moto.iam.models import get_account_id_from
        from moto.s3.models import s3_backends
        from moto.utilities.utils import get_partition

        try:
            backend = s3_backends[get_account_id_from("testing")][get_partition(self.env.region)]
            obj = backend.head_object(bucket, key, version_id)
        except Exception:  # noqa: BLE001 - moto's missing bucket/key/version errors, bad names
            return None
        return None if obj is None else {"ContentLength": obj.size, "ETag": obj.etag}

    def _cached(self, cache_key: tuple, load: Callable[[], bytes]) -> model.ImageInfo:
        with self._cache_lock:
            hit = self._cache.get(cache_key)
            if hit is not None:
                self._cache.move_to_end(cache_key)
        if hit is None:
            try:
                hit = model.analyse_image(load())
            except model.InvalidImage as exc:
                hit = exc  # remembered too: a corrupt object stays corrupt until its ETag changes
            with self._cache_lock:
                self._cache[cache_key] = hit
                if len(self._cache) > _FEATURE_CACHE_SIZE:
                    self._cache.popitem(last=False)
        if isinstance(hit, model.InvalidImage):
            raise ApiError("InvalidImageFormatException", "Request has invalid image format")
        return hit

    def _read_text(self, bucket: str | None, key: str | None, version_id: str | None = None) -> str:
        extra = {"VersionId": version_id} if version_id else {}
        try:
            body = self.env.s3().get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        except (ClientError, TypeError, ValueError) as exc:
            raise LookupError(str(exc)) from exc
        return body.decode("utf-8", errors="replace")
