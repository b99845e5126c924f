"""The simulated workforce: the workers' answers to one data object (custom templates, crowd forms,
built-in box tasks). Mixed into `workforce.JobRun`."""

from __future__ import annotations

import json
import math
import random

from rekfeedback_local.emulator import crowd_template, gt_builtin, policy
from rekfeedback_local.emulator.workforce_models import EVENT_VERSION, EXPIRED_REASON, _Object, _ObjectFailure, _iso_z, _uuid_like


class WorkerAnswers:
    """How JobRun's workers answer (its env, job, crew and knobs)."""

    def _work(self, obj: _Object) -> None:
        rng = random.Random(f"{self.config.seed}:{self.job.name}:{obj.index}")
        if rng.random() < float(self.config.unlabelled_share):
            obj.failure = EXPIRED_REASON
            return
        obj.members = self._members(rng)
        try:
            if self.task:
                contents = self._builtin_answers(obj, rng)
            else:
                contents = self._custom_answers(obj, rng)
        except _ObjectFailure as err:
            obj.failure = str(err)
            return
        if contents is None:
            obj.skipped = True
            return
        submitted = math.ceil(self.env.clock() * 1000) / 1000
        for worker, content in enumerate(contents):
            # Workers accept the task after the job was created and submit it now, as on AWS (the
            # worker-response reference shows acceptanceTime <= submissionTime, both within the job).
            accepted = self.job.created + (submitted - self.job.created) * worker / (len(contents) + 1)
            accepted = math.ceil(accepted * 1000) / 1000  # written to the millisecond: never before the job
            obj.workers.append({
                "acceptanceTime": _iso_z(accepted),
                "answerContent": content,
                "submissionTime": _iso_z(submitted),
                "timeSpentInSeconds": round(submitted - accepted, 3),
                "workerId": self._worker_id(worker, obj.members[worker].name if self.crew else None),
                "workerMetadata": {"identityData": {
                    "identityProviderType": "Cognito",
                    "issuer": f"https://cognito-idp.{self.env.region}.amazonaws.com/{self.env.region}_Emulated1",
                    "sub": _uuid_like(f"{self.job.name}:{worker}"),
                }},
            })
        self._put_json(f"annotations/worker-response/iteration-1/{obj.id}/{self._stamp(obj.id)}.json",
                       {"answers": obj.workers})

    def _workers_per_object(self) -> int:
        return int(self.config.workers_per_object or self.task_config["NumberOfHumanWorkersPerDataObject"])

    @property
    def crew(self) -> list[policy.Annotator]:
        if not hasattr(self, "_crew"):
            self._crew = policy.parse_crew(self.config.annotators)
        return self._crew

    def _members(self, rng: random.Random) -> list[policy.Annotator]:
        """Who answers this object: drawn from the crew when one is set, else the workforce knobs for all."""
        n = self._workers_per_object()
        if self.crew:
            return policy.assign(self.crew, n, rng)
        return [policy.Annotator(f"worker-{k}", self.config.workforce_policy, float(self.config.error_rate))
                for k in range(n)]

    def _custom_answers(self, obj: _Object, rng: random.Random) -> list[dict] | None:
        pre_arn = self.task_config.get("PreHumanTaskLambdaArn")
        task_input = obj.line
        if pre_arn:
            event = {"version": EVENT_VERSION, "labelingJobArn": self.job.arn, "dataObject": obj.line}
            response = self._invoke(pre_arn, event, "pre-annotation")
            if not isinstance(response, dict) or not isinstance(response.get("taskInput"), dict):
                raise _ObjectFailure(f"ClientError: The pre-annotation Lambda {pre_arn} returned no taskInput "
                                     f"object for data object {obj.id}: {str(response)[:200]}")
            required = response.get("isHumanAnnotationRequired", response.get("humanAnnotationRequired", True))
            if str(required).lower() == "false":
                return None
            task_input = response["taskInput"]
        try:
            form = crowd_template.parse(self.template, task_input) if self.template else None
        except ValueError as err:
            raise _ObjectFailure(f"ClientError: {err}")
        if form is not None and not form.posts_one_json_field:
            return self._template_answers(form, task_input, obj.members, rng)
        images = task_input.get("images")
        if not isinstance(images, list):
            # A task about the data object itself (no batch of images).
            images = [{"source-ref": task_input.get("source-ref") or obj.line.get("source-ref"),
                       "predicted": task_input.get("predicted") or obj.line.get("predicted") or []}]
        labels = list(task_input.get("labels") or self.labels)
        answers = []
        for member in obj.members:
            verdicts = []
            for image in images:
                names = [p.get("name", p.get("Name")) if isinstance(p, dict) else str(p)
                         for p in image.get("predicted") or []]
                answer = member.answer(self._truth(image.get("source-ref")), {"labels": names}, rng, labels)
                verdicts.append(policy.verification_answer(image.get("source-ref"), names, answer))
            # The crowd form posts one hidden field named "answer" holding the JSON (team contract).
            answers.append({"answer": json.dumps({"images": verdicts}, separators=(",", ":"))})
        return answers

    def _template_answers(self, form: "crowd_template.Form", task_input: dict, members: list, rng: random.Random) -> list[dict]:
        """Anyone's custom template: each worker answers the crowd elements it holds, by their names."""
        labels = list(task_input.get("labels") or self.labels)
        predicted = {img.get("source-ref"): [p.get("name", p.get("Name")) if isinstance(p, dict) else str(p)
                                             for p in img.get("predicted") or []]
                     for img in task_input.get("images") or [] if isinstance(img, dict)}
        sizes: dict = {}

        def size_of(uri):
            if uri not in sizes:
                sizes[uri] = self._image_size({"source-ref": uri}, None)[:2] if uri else (0, 0)
            return sizes[uri]

        answers = []
        for member in members:
            seen: dict = {}  # one worker's belief per image, whatever number of elements ask about it

            def believe(uri, member=member, seen=seen):
                if uri not in seen:
                    seen[uri] = member.answer(self._truth(uri), {"labels": predicted.get(uri, [])}, rng, labels,
                                              size_of(uri) if uri else None)
                return seen[uri]
            answers.append(crowd_template.answer(form, believe, size_of, labels))
        return answers

    def _builtin_answers(self, obj: _Object, rng: random.Random) -> list[dict]:
        prior = gt_builtin.find_prior_attribute(obj.line, self.request["LabelAttributeName"], self.audit_attribute) \
            if self.task in (gt_builtin.ADJUSTMENT, gt_builtin.VERIFICATION) else None
        if self.task in (gt_builtin.ADJUSTMENT, gt_builtin.VERIFICATION) and not prior:
            raise _ObjectFailure("ClientError: The data object has no bounding-box label attribute to "
                                 f"{'adjust' if self.task == gt_builtin.ADJUSTMENT else 'verify'}.")
        initial = gt_builtin.prior_boxes(obj.line, prior) if prior else []
        size = self._image_size(obj.line, prior) if self.task in gt_builtin.BOX_TASKS else (0, 0, 3)
        obj.size, obj.initial = size, initial
        truth = self._truth(obj.line.get("source-ref"))
        predicted = {"labels": sorted({b["label"] for b in initial}), "boxes": initial}
        if self.task in (gt_builtin.SINGLE_LABEL, gt_builtin.MULTI_LABEL) and truth is not None:
            truth = {"labels": policy.normalize(truth)["labels"]}  # classification: no boxes to draw
        return [gt_builtin.worker_content(self.task, member.answer(truth, predicted, rng, self.labels, size[:2]),
                                          self.labels, rng, size=size[:2], initial=initial, verdicts=self.verdicts)
                for member in obj.members]
