"""Several Ground Truth workers per object, through the emulator over HTTP: honest agreement, pending below the threshold."""

from __future__ import annotations

import pytest

from rekfeedback.core import consensus
from tests.fixtures import ground_truth as helpers
from tests.fixtures.ground_truth import make_operator, make_sensor

# One careful annotator, one who rejects everything, one who answers at random every time.
DISAGREEING = "ann=oracle:0.0,rob=reject-all:0,dan=careless:1.0"


@pytest.mark.parametrize("kind", ["classification", "boxes"])
def test_disagreeing_workers_are_pending_not_verified(emulator, emulator_knobs, s3_bucket, account, kind):  # noqa: F811
    emulator_knobs(annotators=DISAGREEING, workers_per_object=None)
    try:
        data = helpers.make_predictions(s3_bucket, kind, n=8, with_error=False)
        op = make_operator(data, account, f"gt_consensus_{kind}", batch_size=1, label_unpredicted=False,
                           workers_per_object=3)
        result = op.execute(helpers.context())
        out = make_sensor(result, f"gt_consensus_{kind}", agreement_threshold=0.6).execute(helpers.context())
    finally:
        emulator_knobs(annotators="")
    merged = helpers.read_lines(out["answers_uri"])
    pending = helpers.read_lines(out["pending_uri"])
    assert out["counts"]["pending"] == len(pending) and out["counts"]["answers"] == len(merged)
    assert pending, "three workers of whom one rejects everything and one answers at random must disagree"
    for a in merged + pending:
        assert a["workers"] == 3 and a["consensus"]["threshold"] == 0.6
        # Honest: the agreement is the share of the three workers who gave the consolidated answer.
        assert a["agreement"] in (0.0, 0.3333, 0.6667, 1.0), a
    for a in pending:
        assert a["agreement"] < 0.6 and a["consensus"]["status"] == "pending"
        assert len(a["consensus"]["candidates"]) == 3  # what the review round shows
    for a in merged:
        assert a["agreement"] >= 0.6 and a["consensus"]["status"] == "verified"
    if kind == "boxes":
        # The consolidated boxes carry their own agreement, one share per box.
        assert all(len(a["consensus"]["box_agreement"]) == len(a["boxes"]) for a in merged + pending)
    # No pending answer is ever in the merge's input: the same split as the sensor made.
    assert consensus.split(merged + pending) == (merged, pending)
