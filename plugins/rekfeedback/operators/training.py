"""Train the next Rekognition Custom Labels model version on the merged manifest and evaluate it (issue 6).

The rules (version names, the TRAIN/TEST split, chunking) are in `core/training.py`; the calls in
`RekognitionCustomLabelsHook`, the dataset changes and the evaluation in `hooks/rekognition_training.py`;
this module only orders them and waits (deferred).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from rekfeedback.core import arns, templated
from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.core.training import DEFAULT_MAX_CHUNK_BYTES, check_version_name, version_name_for_run
from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook, parse_project_version_arn
from rekfeedback.hooks.rekognition_training import compare_versions, next_dataset_change
from rekfeedback.hooks.s3_artifacts import S3Artifacts
from rekfeedback.links.rekognition import RekognitionProjectVersionLink
from rekfeedback.triggers.dataset import DatasetReadyTrigger
from rekfeedback.triggers.project_version import ProjectVersionTrainedTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


def _share(value, what: str, default: float) -> float:
    return templated.as_float(value, what, default, minimum=0, maximum=1)


class RekognitionTrainProjectVersionOperator(AwsBaseOperator[RekognitionCustomLabelsHook]):
    """Add the merged manifest to the project's datasets, train a new model version, evaluate it.

    1. Splits the manifest deterministically (hash of source-ref): ``test_share`` of the images to
       TEST, the rest to TRAIN (``training/train.manifest`` / ``training/test.manifest`` under
       ``output_prefix``). Each goes to the project's dataset of that type: UpdateDatasetEntries in
       chunks under the API's 5 MB limit (an entry replaces the one with the same source-ref), or
       CreateDataset from the file when the project has no such dataset yet. One change at a time,
       each waited for (deferred: DatasetReadyTrigger); `training/datasets.json` records how many
       chunks each dataset took, so a resume or a retry never re-sends what is in.
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
    :param dataset_waiter_delay: seconds between DescribeDataset checks after a dataset change
        (waiter `dataset_ready`, in DatasetReadyTrigger when deferrable).
    :param dataset_waiter_max_attempts: DescribeDataset checks before giving up.
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
        dataset_waiter_delay: float = 5,
        dataset_waiter_max_attempts: int = 720,
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
        self.dataset_waiter_delay = dataset_waiter_delay
        self.dataset_waiter_max_attempts = dataset_waiter_max_attempts
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
        if templated.is_blank(base):
            return None
        parse_project_version_arn(str(base))  # clear message for a malformed ARN
        return str(base)

    def _project_arn(self) -> str:
        if self.project_arn:
            if not arns.match(arns.PROJECT, self.project_arn):
                raise ValueError(f"project_arn must look like arn:aws:rekognition:<region>:<account>:project/<name>/"
                                 f"<number>, got {self.project_arn!r}")
            return str(self.project_arn).strip()
        base = self._base_arn()
        if base is None:
            raise ValueError("give project_arn or base_version_arn: the operator needs to know the project")
        return self.hook.project_arn_for_version(base)

    def _version_name(self, context) -> str:
        if self.version_name:
            return check_version_name(str(self.version_name))
        return version_name_for_run(self.dag_id, context["run_id"])

    def _s3(self) -> S3Hook:
        return S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                      config=self.botocore_config)

    # -- execute -------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict:
        test_share = _share(self.test_share, "test_share", 0.2)
        _share(self.improvement_margin, "improvement_margin", 0.0)
        turn = parse_s3_uri(self.output_prefix, "output_prefix")
        project_arn = self._project_arn()
        name, existing, failed = self.hook.find_run_version(project_arn, self._version_name(context))
        for version in failed:
            self.log.warning("Version %s of an earlier attempt of this run failed training (%s).",
                             version["ProjectVersionArn"], version.get("StatusMessage"))
        if existing:
            arn = existing["ProjectVersionArn"]
            self.log.info("Version %s already exists for this run (%s): waiting for it, not training another.",
                          arn, existing["Status"])
        else:
            if failed:
                self.log.warning("Every earlier version of this run failed training: training the next one as %s.",
                                 name)
            self._datasets(project_arn, turn, test_share)
            output = turn.join("training", "output")
            arn = self.hook.create_project_version(project_arn, name, output.bucket, output.key,
                                                   self.version_description)
            self.log.info("Training version %s (%s)", name, arn)
        RekognitionProjectVersionLink.persist_for_arn(context, self, arn, self.hook.conn_region_name,
                                                      self.hook.conn_partition)
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
        if not self.wait_for_completion:
            return {"new_version_arn": arn, "version_name": name, "status": "TRAINING_IN_PROGRESS"}
        try:
            self.hook.wait_for_project_version(arn, "project_version_training_completed", self.waiter_delay,
                                               self.waiter_max_attempts, project_arn)
        except AirflowException:
            self._raise_if_failed(project_arn, arn)  # the version's own StatusMessage is the useful reason
            raise
        return self._evaluate(project_arn, arn)

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

    # -- datasets ------------------------------------------------------------------------------
    def _datasets(self, project_arn: str, turn, test_share: float) -> None:
        """Bring the project's datasets up to the merged manifest, one dataset change at a time; each wait
        for the dataset defers (DatasetReadyTrigger) and resumes here, or blocks on `dataset_ready`."""
        while (busy := next_dataset_change(
                self.hook, S3Artifacts(self._s3()), project_arn=project_arn, manifest_uri=self.manifest_uri, turn=turn,
                test_share=test_share, max_chunk_bytes=int(self.max_chunk_bytes), log=self.log)) is not None:
            if self.deferrable:
                self.defer(trigger=DatasetReadyTrigger(
                               dataset_arn=busy, waiter_delay=self.dataset_waiter_delay,
                               waiter_max_attempts=self.dataset_waiter_max_attempts, aws_conn_id=self.aws_conn_id,
                               region_name=self.region_name, verify=self.verify,
                               botocore_config=self.botocore_config),
                           method_name="execute_after_dataset",
                           timeout=timedelta(seconds=self.dataset_waiter_delay * self.dataset_waiter_max_attempts + 60))
            self.hook.wait_for_dataset(busy, self.dataset_waiter_delay, self.dataset_waiter_max_attempts)

    def execute_after_dataset(self, context: Context, event: dict[str, Any] | None = None) -> dict:
        event = validate_execute_complete_event(event)
        if event.get("status") != "success":
            raise AirflowException(f"Dataset {event.get('dataset_arn')} did not become ready: "
                                   f"{event.get('message', event)}")
        return self.execute(context)  # from the top: the next dataset change, or training

    # -- results -------------------------------------------------------------------------------
    def _raise_if_failed(self, project_arn: str, arn: str) -> None:
        desc = self.hook.describe_project_version(arn, project_arn)
        if desc["Status"] == "TRAINING_FAILED":
            # Not retried automatically: the same data would most likely fail again. Clearing the task
            # (or rerunning the DAG run) trains the next version, <name>-r2, ...
            raise AirflowFailException(f"Model version {arn} failed training: {desc.get('StatusMessage')}. "
                                       "Fix the training data, then clear this task to train the next version.")

    def _evaluate(self, project_arn: str, arn: str) -> dict:
        return compare_versions(self.hook, S3Artifacts(self._s3()), project_arn=project_arn, new_version_arn=arn,
                                base_version_arn=self._base_arn(), log=self.log,
                                margin=_share(self.improvement_margin, "improvement_margin", 0.0))
