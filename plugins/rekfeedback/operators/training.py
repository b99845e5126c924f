"""Train the next Rekognition Custom Labels model version on the merged manifest and evaluate it (issue 6)."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.providers.common.compat.sdk import conf
from botocore.exceptions import ClientError

from rekfeedback.core import arns
from rekfeedback.core.evaluation import compare, parse_summary
from rekfeedback.core.merge import source_ref_of
from rekfeedback.core.paths import parse_s3_uri, run_key
from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook, parse_project_version_arn
from rekfeedback.links.rekognition import RekognitionProjectVersionLink
from rekfeedback.triggers.project_version import ProjectVersionTrainedTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

# UpdateDatasetEntries.Changes.GroundTruth must be under 5 MB (5,242,880 bytes); keep a margin.
DEFAULT_MAX_CHUNK_BYTES = 4_500_000
_DATASET_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
_DATASET_FAILED = {"CREATE_FAILED", "UPDATE_FAILED"}


def version_name_for_run(dag_id: str, run_id: str) -> str:
    """A model version name for one DAG run: the same on every retry, valid for VersionName."""
    name = re.sub(r"[^a-zA-Z0-9_.\-]+", "-", f"{dag_id}-{run_key(run_id)}").strip("-.") or "version"
    if len(name) > 255:
        name = name[:240] + "-" + hashlib.sha1(name.encode()).hexdigest()[:12]
    return name


def attempt_version_name(name: str, attempt: int) -> str:
    """The version name of the `attempt`-th training of one run: `name`, then `name-r2`, `name-r3`, ..."""
    if attempt <= 1:
        return name
    suffix = f"-r{attempt}"
    return name[: 255 - len(suffix)] + suffix


def goes_to_test(source_ref: str, test_share: float) -> bool:
    """Deterministic split by a hash of the image, so an image never moves between TRAIN and TEST."""
    bucket = int(hashlib.sha1(source_ref.encode("utf-8")).hexdigest()[:8], 16) % 10_000
    return bucket < round(test_share * 10_000)


def _chunks(path: str, max_bytes: int):
    """Lines of a file grouped into byte chunks under max_bytes (each line keeps its newline)."""
    chunk, size = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            data = line.rstrip("\r\n").encode("utf-8") + b"\n"
            if len(data) > max_bytes:
                raise ValueError(f"a manifest line of {len(data)} bytes exceeds max_chunk_bytes={max_bytes}")
            if size + len(data) > max_bytes:
                yield b"".join(chunk)
                chunk, size = [], 0
            chunk.append(data)
            size += len(data)
    if chunk:
        yield b"".join(chunk)


class RekognitionTrainProjectVersionOperator(AwsBaseOperator[RekognitionCustomLabelsHook]):
    """Add the merged manifest to the project's datasets, train a new model version, evaluate it.

    1. Splits the manifest deterministically (hash of source-ref): ``test_share`` of the images to
       TEST, the rest to TRAIN (``training/train.manifest`` / ``training/test.manifest`` under
       ``output_prefix``). Each goes to the project's dataset of that type: UpdateDatasetEntries in
       chunks under the API's 5 MB limit (an entry replaces the one with the same source-ref), or
       CreateDataset from the file when the project has no such dataset yet.
    2. Creates the version named ``version_name`` (default: derived from the DAG id and run id).
       A retry finds that version and waits for it (or evaluates it) instead of training another:
       one version per successful attempt. Only when that version failed training, which took its
       name for good, does a later attempt train ``<version_name>-r2`` (then ``-r3``, ...: the next
       name not taken by a failed version), and it says so in the log.
    3. Waits for training (deferrable by default, ProjectVersionTrainedTrigger). A version that
       fails training fails the task with Rekognition's StatusMessage, without an automatic retry
       (AirflowFailException): the data usually needs fixing, so only a clear or rerun of the
       task trains the next version.
    4. Reads the evaluation (EvaluationResult.F1Score and the summary file's per-label figures) and
       compares it with ``base_version_arn``, the version the run started from.

    Returns ``{"new_version_arn", "version_name", "f1_before", "f1_after", "delta", "margin",
    "improved", "per_label": {label: {"f1_before", "f1_after", "delta", "precision_after",
    "recall_after"}}, "base_version_arn", "evaluation_summary_uri", "testing_images",
    "training_images"}``. ``improved`` is true when F1 rose by more than ``improvement_margin``, or
    when there is no base version to beat.

    :param manifest_uri: the merged manifest (ManifestMergeOperator's ``manifest_uri``). (templated)
    :param output_prefix: the turn prefix; split manifests and training output go under it. (templated)
    :param project_arn: the project; default: the project of ``base_version_arn``. (templated)
    :param base_version_arn: the version the run started from (an ARN, or the start task's XCom dict). (templated)
    :param version_name: name of the new version; default derived from the run. (templated)
    :param test_share: share of images routed to the TEST dataset, 0..1 (default 0.2). (templated)
    :param improvement_margin: absolute F1 gain needed for ``improved`` (default 0.0). (templated)
    :param max_chunk_bytes: UpdateDatasetEntries payload size per call.
    :param dataset_poll_seconds: seconds between DescribeDataset checks after a dataset change.
    :param dataset_max_attempts: DescribeDataset checks before giving up.
    :param wait_for_completion: wait for training when not deferrable.
    :param waiter_delay: seconds between training status checks.
    :param waiter_max_attempts: training status checks before giving up (default 24 h at 120 s).
    :param deferrable: wait in the triggerer (default: Airflow's
        `[operators] default_deferrable`, True when unset).
    """

    aws_hook_class = RekognitionCustomLabelsHook
    template_fields: Sequence[str] = aws_template_fields(
        "manifest_uri", "output_prefix", "project_arn", "base_version_arn", "version_name", "test_share",
        "improvement_margin",
    )
    operator_extra_links = (RekognitionProjectVersionLink(),)
    ui_color = "#ffd8a8"

    def __init__(
        self,
        *,
        manifest_uri: str,
        output_prefix: str,
        project_arn: str | None = None,
        base_version_arn: str | dict | None = None,
        version_name: str | None = None,
        test_share: float | str = 0.2,
        improvement_margin: float | str = 0.0,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        dataset_poll_seconds: float = 5,
        dataset_max_attempts: int = 720,
        version_description: str | None = None,
        wait_for_completion: bool = True,
        waiter_delay: int = 120,
        waiter_max_attempts: int = 720,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=True),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest_uri = manifest_uri
        self.output_prefix = output_prefix
        self.project_arn = project_arn
        self.base_version_arn = base_version_arn
        self.version_name = version_name
        self.test_share = test_share
        self.improvement_margin = improvement_margin
        self.max_chunk_bytes = max_chunk_bytes
        self.dataset_poll_seconds = dataset_poll_seconds
        self.dataset_max_attempts = dataset_max_attempts
        self.version_description = version_description
        self.wait_for_completion = wait_for_completion
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.deferrable = deferrable

    # -- parameters ----------------------------------------------------------------------------
    def _base_arn(self) -> str | None:
        base = self.base_version_arn
        if isinstance(base, dict):
            base = base.get("project_version_arn")
        if base in (None, "", "None"):
            return None
        parse_project_version_arn(str(base))  # clear message for a malformed ARN
        return str(base)

    def _project_arn(self) -> str:
        if self.project_arn:
            if not arns.match(arns.PROJECT, self.project_arn):
                raise ValueError(f"project_arn must look like arn:aws:rekognition:<region>:<account>:project/<name>/<number>, "
                                 f"got {self.project_arn!r}")
            return str(self.project_arn).strip()
        base = self._base_arn()
        if base is None:
            raise ValueError("give project_arn or base_version_arn: the operator needs to know the project")
        return self.hook.project_arn_for_version(base)

    def _fraction(self, value, what: str) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number, got {value!r}") from None
        if not 0 <= number <= 1:
            raise ValueError(f"{what} must be between 0 and 1, got {number}")
        return number

    def _version_name(self, context) -> str:
        if self.version_name:
            name = str(self.version_name)
            if not re.fullmatch(r"[a-zA-Z0-9_.\-]{1,255}", name):
                raise ValueError(f"version_name must be 1-255 characters of letters, digits, '_', '.', '-': {name!r}")
            return name
        return version_name_for_run(self.dag_id, context["run_id"])

    def _s3(self) -> S3Hook:
        return S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                      config=self.botocore_config)

    # -- execute -------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict:
        test_share = self._fraction(self.test_share, "test_share")
        self._fraction(self.improvement_margin, "improvement_margin")
        turn = parse_s3_uri(self.output_prefix, "output_prefix")
        project_arn = self._project_arn()
        name, existing = self._find_version(project_arn, self._version_name(context))
        if existing:
            arn = existing["ProjectVersionArn"]
            self.log.info("Version %s already exists for this run (%s): waiting for it, not training another.",
                          arn, existing["Status"])
        else:
            self._update_datasets(project_arn, turn, test_share)
            arn = self._create_version(project_arn, name, turn)
        self._persist_link(context, arn)

        if self.deferrable:
            self.defer(
                trigger=ProjectVersionTrainedTrigger(
                    project_arn=project_arn, version_name=name, project_version_arn=arn,
                    waiter_delay=self.waiter_delay, waiter_max_attempts=self.waiter_max_attempts,
                    aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                    botocore_config=self.botocore_config,
                ),
                method_name="execute_complete",
                kwargs={"project_arn": project_arn, "new_version_arn": arn},
                timeout=timedelta(seconds=self.waiter_delay * self.waiter_max_attempts + 600),
            )
        if self.wait_for_completion:
            try:
                self.hook.get_waiter("project_version_training_completed").wait(
                    ProjectArn=project_arn, VersionNames=[name],
                    WaiterConfig={"Delay": self.waiter_delay, "MaxAttempts": self.waiter_max_attempts},
                )
            except Exception as exc:  # noqa: BLE001 - the version's own StatusMessage is the useful reason
                self._raise_if_failed(project_arn, arn)
                raise AirflowException(f"Waiting for training of {arn} failed: {exc}") from exc
            return self._evaluate(project_arn, arn)
        return {"new_version_arn": arn, "version_name": name, "status": "TRAINING_IN_PROGRESS"}

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None,
                         project_arn: str | None = None, new_version_arn: str | None = None) -> dict:
        event = validate_execute_complete_event(event)
        # Defer kwargs are not carried by every runner (dag.test passes only the event): recompute.
        project_arn = project_arn or self._project_arn()
        arn = new_version_arn or event.get("project_version_arn")
        if event.get("status") != "success":
            self._raise_if_failed(project_arn, arn)
            raise AirflowException(f"Training of {arn} did not complete: {event.get('message', event)}")
        return self._evaluate(project_arn, arn)

    def _find_version(self, project_arn: str, base: str) -> tuple[str, dict | None]:
        """This run's version to wait for (name, description), or the name to train under (name, None).

        Versions of earlier attempts that failed training are passed over, each logged; the first
        one that did not fail is reused whatever its status (training, trained, running...).
        """
        rek = self.hook.conn
        attempt = 0
        while True:
            attempt += 1
            name = attempt_version_name(base, attempt)
            found = rek.describe_project_versions(ProjectArn=project_arn, VersionNames=[name])["ProjectVersionDescriptions"]
            if not found:
                if attempt > 1:
                    self.log.warning("Every earlier version of this run failed training (the last one, %s, is "
                                     "taken by that failure): training the next one as %s.",
                                     attempt_version_name(base, attempt - 1), name)
                return name, None
            if found[0]["Status"] != "TRAINING_FAILED":
                return name, found[0]
            self.log.warning("Version %s of an earlier attempt of this run failed training (%s).",
                             found[0]["ProjectVersionArn"], found[0].get("StatusMessage"))

    def _persist_link(self, context, arn: str) -> None:
        RekognitionProjectVersionLink.persist_for_arn(context, self, arn, self.hook.conn_region_name,
                                                      self.hook.conn_partition)

    # -- datasets ------------------------------------------------------------------------------
    def _split(self, directory: str, test_share: float) -> tuple[str, str, int, int]:
        src = parse_s3_uri(self.manifest_uri, "manifest_uri")
        local = os.path.join(directory, "merged.manifest")
        try:
            self._s3().get_conn().download_file(src.bucket, src.key, local)
        except ClientError as exc:
            raise FileNotFoundError(f"manifest_uri {self.manifest_uri} cannot be read "
                                    f"({exc.response.get('Error', {}).get('Code')}); pass ManifestMergeOperator's manifest_uri") from exc
        train, test = os.path.join(directory, "train.manifest"), os.path.join(directory, "test.manifest")
        counts = [0, 0]
        with open(local, encoding="utf-8") as f, open(train, "w", encoding="utf-8") as tr, \
                open(test, "w", encoding="utf-8") as te:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                ref = source_ref_of(line)
                if ref is None:
                    raise ValueError(f"{self.manifest_uri} line {n} has no source-ref; it is not a merged manifest")
                to_test = goes_to_test(ref, test_share)
                (te if to_test else tr).write(line + "\n")
                counts[to_test] += 1
        return train, test, counts[0], counts[1]

    def _update_datasets(self, project_arn: str, turn, test_share: float) -> None:
        rek = self.hook.conn
        project_name = arns.match(arns.PROJECT, project_arn)["project"]
        projects = rek.describe_projects(ProjectNames=[project_name])["ProjectDescriptions"]
        datasets = {d["DatasetType"]: d["DatasetArn"] for d in (projects[0].get("Datasets") or [])} if projects else {}
        with tempfile.TemporaryDirectory(prefix="rekfeedback-train-") as tmp:
            train, test, n_train, n_test = self._split(tmp, test_share)
            self.log.info("Manifest split: %d image(s) to TRAIN, %d to TEST (test_share=%s)", n_train, n_test, test_share)
            if n_train == 0:
                raise ValueError(f"{self.manifest_uri} gives no TRAIN image (it is empty, or test_share is 1)")
            s3 = self._s3().get_conn()
            for kind, path, count in (("TRAIN", train, n_train), ("TEST", test, n_test)):
                if count == 0:
                    continue
                target = turn.join("training", f"{kind.lower()}.manifest")
                s3.upload_file(path, target.bucket, target.key)
                if kind in datasets:
                    self._update_entries(datasets[kind], path, kind)
                else:
                    self.log.info("The project has no %s dataset: creating it from %s", kind, target)
                    arn = rek.create_dataset(
                        ProjectArn=project_arn, DatasetType=kind,
                        DatasetSource={"GroundTruthManifest": {"S3Object": {"Bucket": target.bucket, "Name": target.key}}},
                    )["DatasetArn"]
                    datasets[kind] = arn
                    self._wait_dataset(arn, kind)
        if "TEST" not in datasets:
            raise AirflowException(
                f"Project {project_arn} has no TEST dataset and test_share={test_share} routed no image to TEST; "
                "Rekognition needs both datasets to train. Set test_share > 0 (e.g. 0.2).")

    def _update_entries(self, dataset_arn: str, path: str, kind: str) -> None:
        self._wait_dataset(dataset_arn, kind)  # an update is refused while another one runs
        calls = 0
        for chunk in _chunks(path, int(self.max_chunk_bytes)):
            self.hook.conn.update_dataset_entries(DatasetArn=dataset_arn, Changes={"GroundTruth": chunk})
            calls += 1
            self._wait_dataset(dataset_arn, kind)
        self.log.info("%s dataset %s: %d UpdateDatasetEntries call(s)", kind, dataset_arn, calls)

    def _wait_dataset(self, dataset_arn: str, kind: str) -> None:
        for _ in range(max(1, int(self.dataset_max_attempts))):
            desc = self.hook.conn.describe_dataset(DatasetArn=dataset_arn)["DatasetDescription"]
            status = desc["Status"]
            if status in _DATASET_DONE:
                return
            if status in _DATASET_FAILED:
                raise AirflowException(f"{kind} dataset {dataset_arn} is {status}: {desc.get('StatusMessage')} "
                                       f"({desc.get('StatusMessageCode')})")
            time.sleep(self.dataset_poll_seconds)
        raise AirflowException(f"{kind} dataset {dataset_arn} still {status} after {self.dataset_max_attempts} checks")

    def _create_version(self, project_arn: str, name: str, turn) -> str:
        output = turn.join("training", "output")
        kwargs = {"ProjectArn": project_arn, "VersionName": name,
                  "OutputConfig": {"S3Bucket": output.bucket, "S3KeyPrefix": output.key}}
        if self.version_description:
            kwargs["VersionDescription"] = str(self.version_description)[:255]
        try:
            arn = self.hook.conn.create_project_version(**kwargs)["ProjectVersionArn"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
            # Another attempt of this run created it between our check and this call.
            found = self.hook.conn.describe_project_versions(ProjectArn=project_arn, VersionNames=[name])
            if not found["ProjectVersionDescriptions"]:
                raise
            arn = found["ProjectVersionDescriptions"][0]["ProjectVersionArn"]
        self.log.info("Training version %s (%s)", name, arn)
        return arn

    # -- results -------------------------------------------------------------------------------
    def _describe(self, project_arn: str, arn: str) -> dict:
        name = parse_project_version_arn(arn).version_name
        found = self.hook.conn.describe_project_versions(ProjectArn=project_arn, VersionNames=[name])
        for desc in found["ProjectVersionDescriptions"]:
            if desc["ProjectVersionArn"] == arn:
                return desc
        raise AirflowException(f"Model version {arn} not found in {project_arn}")

    def _raise_if_failed(self, project_arn: str, arn: str) -> None:
        desc = self._describe(project_arn, arn)
        if desc["Status"] == "TRAINING_FAILED":
            # Not retried automatically: the same data would most likely fail again. Clearing the task
            # (or rerunning the DAG run) trains the next version, <name>-r2, ...
            raise AirflowFailException(f"Model version {arn} failed training: {desc.get('StatusMessage')}. "
                                       "Fix the training data, then clear this task to train the next version.")

    def _evaluation(self, desc: dict):
        result = desc.get("EvaluationResult")
        if not result:
            return None, None
        s3obj = (result.get("Summary") or {}).get("S3Object") or {}
        if not s3obj.get("Bucket") or not s3obj.get("Name"):
            return parse_summary({}, result.get("F1Score")), None
        body = self._s3().get_conn().get_object(Bucket=s3obj["Bucket"], Key=s3obj["Name"])["Body"].read()
        return parse_summary(body, result.get("F1Score")), f"s3://{s3obj['Bucket']}/{s3obj['Name']}"

    def _evaluate(self, project_arn: str, arn: str) -> dict:
        desc = self._describe(project_arn, arn)
        if desc["Status"] != "TRAINING_COMPLETED":
            raise AirflowException(f"Model version {arn} is {desc['Status']}: {desc.get('StatusMessage')}")
        after, summary_uri = self._evaluation(desc)
        if after is None:
            raise AirflowException(f"Model version {arn} completed training without an EvaluationResult")
        before = None
        base = self._base_arn()
        if base:
            before, _ = self._evaluation(self._describe(self.hook.project_arn_for_version(base), base))
            if before is None:
                self.log.warning("Base version %s has no evaluation; nothing to compare with", base)
        result = compare(before, after, self._fraction(self.improvement_margin, "improvement_margin"))
        result.update(new_version_arn=arn, version_name=desc["ProjectVersionArn"].split("/version/")[1].split("/")[0],
                      base_version_arn=base, evaluation_summary_uri=summary_uri,
                      testing_images=after.testing_images, training_images=after.training_images)
        self.log.info("F1 %s -> %s (margin %s): %s", result["f1_before"], result["f1_after"], result["margin"],
                      "improved" if result["improved"] else "not improved")
        return result
