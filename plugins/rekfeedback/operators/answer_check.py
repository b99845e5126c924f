"""Check a turn's human answers before the merge: pending (disagreeing workers) and probably wrong ones."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowFailException

from rekfeedback.core import answers as answerlib
from rekfeedback.core import consensus, noise, review_round
from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.core.predictions import read_prediction_lines
from rekfeedback.hooks.s3_artifacts import S3Artifacts

if TYPE_CHECKING:
    from airflow.sdk import Context


class AnswerCheckOperator(AwsBaseOperator[S3Hook]):
    """The label-noise check and the review round's input, between the first round's answers and the merge.

    Reads the answers (and the `*.pending.jsonl` beside each: answers of workers who disagreed) and
    the turn's predictions, runs `core.noise.check` and `core.review_round.plan`, and writes under
    `<output_prefix>/checked/`: `answers.jsonl` (what the merge takes as it is), `flags.jsonl` (every
    answer reviewed or held out, with its reasons: none is dropped silently) and, when some need
    review, `review-round/predictions/part-00000-of-00001.jsonl` (the round's tasks, pre-filled with
    the candidate answers). Same inputs, same bytes: safe to retry.

    :param answers_uris: the first round's normalized answer files (auto-accepted ones are not checked).
    :param predictions_uris: the turn's prediction files or their prefix (the model's opinion).
    :param noise_check: `review` (flagged answers go to the review round), `hold-out` (kept out of
        training, listed) or `off`.
    :param review_round: when off, answers that need review are held out (pending ones stay pending).
    Returns `{"answers_uri", "flags_uri", "review_predictions_uri" (None when nothing to review),
    "counts": {"checked", "merged", "to_review", "held_out", "pending", "flagged"}, "cleanlab"}`.
    """

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields(
        "answers_uris", "predictions_uris", "output_prefix", "noise_check", "noise_confidence",
        "agreement_threshold", "review_round")
    ui_color = "#fff3c4"

    def __init__(self, *, answers_uris: list[str] | str, predictions_uris: list[str] | str, output_prefix: str,
                 noise_check: str = "review", noise_confidence: float = noise.DEFAULT_CONFIDENCE,
                 agreement_threshold: float = consensus.DEFAULT_THRESHOLD, review_round: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers_uris = answers_uris
        self.predictions_uris = predictions_uris
        self.output_prefix = output_prefix
        self.noise_check = noise_check
        self.noise_confidence = noise_confidence
        self.agreement_threshold = agreement_threshold
        self.review_round = review_round

    def _answer_uris(self) -> list[str]:
        value = self.answers_uris
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [value]
        return [str(u) for u in value or [] if u]

    def execute(self, context: Context) -> dict:
        if self.noise_check not in review_round.NOISE_MODES:
            raise AirflowFailException(f"noise_check must be one of {review_round.NOISE_MODES}, got {self.noise_check!r}")
        turn = parse_s3_uri(self.output_prefix, "output_prefix")
        store = S3Artifacts(self.hook)
        answers = []
        for uri in self._answer_uris():
            for where in (uri, consensus.pending_uri(uri)):
                text = store.read_text(parse_s3_uri(where, "answers_uris"), missing_ok=True)
                answers.extend(answerlib.loads_jsonl(text or "", where))
        predictions = {}
        for uri in store.jsonl_files(self.predictions_uris):
            for line in read_prediction_lines(store.read_text(uri) or "", str(uri)):
                predictions.setdefault(line["source-ref"], line)
        found = noise.check(answers, predictions, confidence=float(self.noise_confidence),
                            agreement_threshold=float(self.agreement_threshold)) \
            if self.noise_check != "off" else {"flags": [], "cleanlab": "not used (noise_check is off)"}
        split = review_round.plan(answers, found["flags"], noise_check=self.noise_check,
                                  review_round=bool(self.review_round))
        answers_uri, flags_uri = turn.join("checked", "answers.jsonl"), turn.join("checked", "flags.jsonl")
        store.write_text(answers_uri, answerlib.dumps_jsonl(split["merge"]))
        store.write_text(flags_uri, "".join(json.dumps(f, sort_keys=True) + "\n" for f in split["flags"]))
        review_uri = None
        if split["review"]:
            review_uri = turn.join("review-round", "predictions", "part-00000-of-00001.jsonl")
            store.write_text(review_uri, "".join(json.dumps(review_round.review_line(a), sort_keys=True) + "\n"
                                                 for a in split["review"]))
        counts = {"checked": len(answers), "merged": len(split["merge"]), "to_review": len(split["review"]),
                  "held_out": len(split["held_out"]), "flagged": len(found["flags"]),
                  "pending": sum(consensus.is_pending(a) for a in answers)}
        self.log.info("answer check: %s; cleanlab %s", counts, found["cleanlab"])
        for flag in split["flags"][:20]:
            self.log.info("%s %s: %s", flag["action"], flag["source-ref"],
                          "; ".join(r["detail"] for r in flag["reasons"]))
        return {"answers_uri": str(answers_uri), "flags_uri": str(flags_uri),
                "review_predictions_uri": str(review_uri) if review_uri else None,
                "counts": counts, "cleanlab": found["cleanlab"]}
