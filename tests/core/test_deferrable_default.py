"""`deferrable` defaults from Airflow's `[operators] default_deferrable` (the amazon provider's way); the DAG
sets it to True for every task, since a turn waits for people whatever that setting says."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CLASSES = ("rekfeedback.operators.project_version:RekognitionStartProjectVersionOperator",
           "rekfeedback.operators.project_version_stop:RekognitionStopProjectVersionOperator",
           "rekfeedback.operators.training:RekognitionTrainProjectVersionOperator",
           "rekfeedback.sensors.ground_truth:GroundTruthLabelingJobSensor",
           "rekfeedback.sensors.label_studio:LabelStudioReviewSensor")
WAITS = ("model.start", "model.stop", "training.train_and_compare", "human_review.ground_truth_wait", "human_review.label_studio_wait")

SCRIPT = """
import importlib, inspect, sys
for spec in sys.argv[2:]:
    module, name = spec.split(":")
    cls = getattr(importlib.import_module(module), name)
    print(inspect.signature(cls.__init__).parameters["deferrable"].default)
from airflow.dag_processing.dagbag import BundleDagBag
dag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=sys.argv[1]).dags["rekognition_feedback_loop"]
print(sorted((t.task_id, t.deferrable) for t in dag.tasks if hasattr(t, "deferrable")))
"""


@pytest.mark.parametrize("setting", ["True", "False"])
def test_operators_follow_airflow_config_and_the_dag_always_defers(setting):
    env = dict(os.environ, AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE=setting)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "dags"), *CLASSES], env=env, capture_output=True,
                         text=True, timeout=180, check=True).stdout.splitlines()
    assert out[:len(CLASSES)] == [setting] * len(CLASSES)
    tasks = dict(eval(out[-1]))  # noqa: S307 - our own subprocess's repr of (task_id, bool) pairs
    assert set(WAITS) <= set(tasks), sorted(tasks)
    assert all(tasks[t] is True for t in tasks), tasks
