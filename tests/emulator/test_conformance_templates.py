"""Anyone's custom task template and Lambda code, unchanged: the simulated worker answers the crowd elements
of the job's UI template by their names, and Lambda ARNs route to handler files by path (the `lambdas` knob)."""

from __future__ import annotations

import textwrap
import uuid

from rekfeedback_local.emulator import crowd_template

from .test_ground_truth_workforce import LABELS, aws, bucket, job_request, knobs, read_lines, run, truth_of  # noqa: F401

CHECKBOX_TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
{% for image in task.input.images %}
  <img src="{{ image['source-ref'] | grant_read_access }}">
  {% for label in task.input.labels %}
  <crowd-checkbox name="item-{{ forloop.parentloop.index }}" value="{{ label }}">{{ label }}</crowd-checkbox>
  {% endfor %}
{% endfor %}
</crowd-form>"""

PRE = """
def lambda_handler(event, context):
    return {"taskInput": {"images": event["dataObject"]["images"], "labels": ["circle", "square", "star"]},
            "isHumanAnnotationRequired": "true"}
"""

POST = """
import json
import boto3

def lambda_handler(event, context):
    bucket, key = event["payload"]["s3Uri"][len("s3://"):].split("/", 1)
    payload = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    out = []
    for obj in payload:
        content = json.loads(obj["annotations"][0]["annotationData"]["content"])
        images = [{"item": name, "labels": sorted(v for v, on in ticks.items() if on)}
                  for name, ticks in sorted(content.items())]
        out.append({"datasetObjectId": obj["datasetObjectId"],
                    "consolidatedAnnotation": {"content": {event["labelAttributeName"]: {"images": images}}}})
    return out
"""


def test_a_checkbox_template_with_file_lambdas_is_answered_by_element_name(aws, bucket, knobs, tmp_path):
    _, s3 = aws
    s3.put_object(Bucket=bucket, Key="checkbox.liquid.html", Body=CHECKBOX_TEMPLATE.encode())
    (tmp_path / "pre.py").write_text(textwrap.dedent(PRE))
    (tmp_path / "post.py").write_text(textwrap.dedent(POST))
    suffix = uuid.uuid4().hex[:6]
    knobs.lambdas = f"pub-pre-{suffix}={tmp_path / 'pre.py'}:lambda_handler;pub-post-{suffix}={tmp_path / 'post.py'}:lambda_handler"
    own = "arn:aws:lambda:us-east-1:123456789012:function:"
    request = job_request(bucket, f"checkbox-{suffix}", "custom.manifest", "verified", f"{own}pub-pre-{suffix}",
                          f"{own}pub-post-{suffix}")
    request["HumanTaskConfig"]["UiConfig"] = {"UiTemplateS3Uri": f"s3://{bucket}/checkbox.liquid.html"}
    job = run(aws, request)
    assert job["LabelingJobStatus"] == "Completed", job.get("FailureReason")
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    for batch, line in enumerate(out):
        got = [image["labels"] for image in line["verified"]["images"]]
        assert got == [truth_of(i)["labels"] for i in range(3 * batch, 3 * batch + 3)]


def test_each_element_kind_posts_its_documented_shape():
    template = """<crowd-form>
      <crowd-radio-group><crowd-radio-button name="present" value="yes">circle</crowd-radio-button></crowd-radio-group>
      <crowd-classifier name="kind" categories='["circle", "square", "none"]'></crowd-classifier>
      <crowd-image-classifier-multi-select name="all" src="s3://b/2.png" categories='["circle", "square", "star"]'>
      </crowd-image-classifier-multi-select>
      <crowd-bounding-box name="boxes" src="s3://b/2.png" labels='["square"]'></crowd-bounding-box>
      <crowd-input name="comment"></crowd-input>
    </crowd-form>"""
    form = crowd_template.parse(template, {})
    beliefs = {None: {"labels": ["circle"]},
               "s3://b/2.png": {"labels": ["square", "star"], "boxes": [
                   {"label": "square", "left": 1, "top": 2, "width": 3, "height": 4},
                   {"label": "star", "left": 5, "top": 6, "width": 7, "height": 8}]}}
    content = crowd_template.answer(form, beliefs.__getitem__, lambda uri: (64, 48), list(LABELS))
    assert content == {
        "present": {"yes": True},
        "kind": {"label": "circle"},
        "all": {"labels": ["square", "star"]},
        "boxes": {"boundingBoxes": [{"label": "square", "left": 1, "top": 2, "width": 3, "height": 4}],
                  "inputImageProperties": {"width": 64, "height": 48}},
        "comment": "square, star",
    }
