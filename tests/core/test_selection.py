"""Review selection under a budget (core.selection) and the inference signals it reads (core.signals)."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from rekfeedback import turn_config
from rekfeedback.core import selection, signals
from rekfeedback.core.review import RoutingPolicy, build_review_set

ROUTING = RoutingPolicy(label_unpredicted=True)


def line(ref: str, labels: list[tuple[str, float]], margin: float | None = None, descriptor: str | None = None,
         below: list[tuple[str, float]] = ()) -> dict:
    out = {"source-ref": f"s3://b/{ref}.jpg", "width": 100, "height": 100, "format": "jpeg", "error": None,
           "labels": [{"name": n, "confidence": c, "box": None} for n, c in labels], "model": "m"}
    if margin is not None or descriptor is not None or below:
        out["signals"] = {"floor": 25.0, "threshold": 50.0, "margin": margin, "near_threshold": 0,
                          "below": [{"name": n, "confidence": c, "box": None} for n, c in below],
                          "descriptor": descriptor}
    return out


def random_lines(rng: random.Random, n: int) -> list[dict]:
    out = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.1:
            out.append(line(f"img{i:04d}", []))  # no prediction: a to-label candidate
        else:
            conf = rng.uniform(50, 100)
            out.append(line(f"img{i:04d}", [(rng.choice("abcdef"), conf)], margin=rng.uniform(0, conf),
                            descriptor=f"{rng.getrandbits(64):016x}" + bytes(rng.randrange(256) for _ in range(12)).hex()))
    return out


def picked(result: selection.Selection) -> list[str]:
    return sorted(x["source-ref"] for x in result.for_review if x.get("selection"))


@pytest.mark.parametrize("strategy", ["random", "uncertainty", "balanced"])
def test_selection_is_deterministic_for_a_seed_and_the_seed_matters(strategy):
    lines = random_lines(random.Random(1), 120)
    policy = selection.SelectionPolicy(strategy=strategy, budget=15, seed=4)
    first = selection.select(lines, ROUTING, policy)
    again = selection.select(list(reversed(lines)), ROUTING, policy)  # input order does not matter either
    assert first.for_review == again.for_review and first.deferred == again.deferred
    if strategy == "random":
        other = selection.select(lines, ROUTING, selection.SelectionPolicy(strategy=strategy, budget=15, seed=5))
        assert picked(other) != picked(first)


@pytest.mark.parametrize("seed", range(6))
def test_the_budget_is_never_exceeded_and_no_image_is_dropped(seed):
    rng = random.Random(seed)
    lines = random_lines(rng, rng.randint(0, 80))
    routing = RoutingPolicy(auto_accept_threshold=rng.choice([None, 80.0]), audit_rate=rng.choice([0.0, 0.5]),
                            seed=seed, label_unpredicted=rng.random() < 0.5)
    budget = rng.randint(0, 30)
    for strategy in ("random", "uncertainty", "balanced", None):
        result = selection.select(lines, routing, selection.SelectionPolicy(strategy=strategy, budget=budget, seed=seed))
        chosen = [x for x in result.for_review if x.get("selection")]
        assert len(chosen) <= budget
        refs = [x["source-ref"] for x in result.for_review] + [x["source-ref"] for x in result.deferred]
        assert sorted(refs) == sorted(x["source-ref"] for x in lines)  # every image once: reviewed, routed or deferred
        # What goes on to review holds no candidate that was not chosen: the review step sends exactly the budget.
        items = build_review_set(result.for_review, routing)
        assert len(items.by_route("human", "audit", "to-label")) == len(chosen)
        assert sorted(x["selection"]["rank"] for x in chosen) == list(range(1, len(chosen) + 1))
        assert all(x["selection"]["reason"] for x in chosen)


def test_a_cost_cap_limits_like_a_budget():
    lines = random_lines(random.Random(2), 50)
    policy = selection.SelectionPolicy(strategy="uncertainty", cost_cap=1.0, price_per_image=0.08)
    assert policy.limit == 12
    assert len(picked(selection.select(lines, ROUTING, policy))) == 12
    both = selection.SelectionPolicy(budget=5, cost_cap=1.0, price_per_image=0.08)
    assert both.limit == 5 and both.effective_strategy == "balanced"
    assert selection.SelectionPolicy().effective_strategy == "all"


def test_a_rare_label_is_represented_under_a_tight_budget():
    lines = [line(f"common{i:03d}", [("square", 60.0 + i % 5)], margin=20.0 + i % 5,
                  descriptor=f"{random.Random(i).getrandbits(64):016x}" + "80" * 12) for i in range(60)]
    lines += [line(f"rare{i}", [("cross", 90.0)], margin=80.0, descriptor=f"{random.Random(100 + i).getrandbits(64):016x}"
                   + "80" * 12) for i in range(2)]
    counts = {"square": 40, "cross": 1}
    balanced = selection.select(lines, ROUTING, selection.SelectionPolicy(budget=6), counts)
    rare = [x for x in balanced.for_review if x.get("selection") and x["labels"][0]["name"] == "cross"]
    assert rare and rare[0]["selection"]["reason"] == "rare-label"
    # Uncertainty alone never reaches the confident rare images: that is why balanced is the default.
    by_uncertainty = selection.select(lines, ROUTING, selection.SelectionPolicy("uncertainty", budget=6), counts)
    assert not any("rare" in ref for ref in picked(by_uncertainty))


def test_a_burst_of_near_duplicates_costs_one_review():
    same = "0f0f0f0f0f0f0f0f" + "40" * 12
    burst = [line(f"burst{i}", [("star", 55.0)], margin=5.0, descriptor=same) for i in range(10)]
    others = [line(f"other{i}", [("star", 70.0)], margin=40.0,
                   descriptor=f"{random.Random(i).getrandbits(64):016x}" + f"{40 + 20 * i:02x}" * 12) for i in range(5)]
    result = selection.select(burst + others, ROUTING, selection.SelectionPolicy(budget=5), {"star": 10})
    assert sum("burst" in ref for ref in picked(result)) == 1
    reasons = {x["selection"]["reason"] for x in result.for_review if x.get("selection")}
    assert "diversity" in reasons


def test_settings_are_checked_with_a_clear_error():
    with pytest.raises(ValueError, match="selection 'all'.*review_budget"):
        selection.policy_from_settings("all", 10, None, 0.08)
    with pytest.raises(ValueError, match="selection must be one of"):
        selection.policy_from_settings("smart", None, None, 0.08)
    with pytest.raises(ValueError, match="review_budget"):
        selection.policy_from_settings("auto", "2.5", None, 0.08)
    assert selection.policy_from_settings("auto", "", None, 0.08).effective_strategy == "all"
    config = turn_config.resolve({"selection": "all", "review_budget": 3, "project_version_arn": turn_config.ARN_EXAMPLE,
                                  "input_uri": "s3://bucket/in/", "output_uri": "s3://bucket/out/",
                                  "review_backend": "label-studio"}, environ={})
    with pytest.raises(turn_config.TurnConfigError, match="selection 'all'"):
        turn_config.validate(config)
    assert turn_config.validate({**config, "selection": "balanced"})
    assert selection.needs_signals({**config, "selection": "auto"}) is True
    assert selection.needs_signals({**config, "selection": "random"}) is False
    assert selection.needs_signals({**config, "selection": "auto", "review_budget": None}) is False


# --- signals -----------------------------------------------------------------------------------

def answer(*labels: tuple[str, float, dict | None]) -> dict:
    out = []
    for name, conf, box in labels:
        lab = {"Name": name, "Confidence": conf}
        if box:
            lab["Geometry"] = {"BoundingBox": {k.capitalize(): v for k, v in box.items()}}
        out.append(lab)
    return {"CustomLabels": out}


BOX = {"left": 0.1, "top": 0.1, "width": 0.3, "height": 0.3}
OTHER = {"left": 0.6, "top": 0.6, "width": 0.2, "height": 0.2}


@pytest.mark.parametrize("max_results", [None, 1, 2])
def test_the_labels_shown_are_those_of_the_users_own_threshold(max_results):
    full = answer(("star", 91.0, BOX), ("circle", 72.0, OTHER), ("square", 48.0, BOX), ("circle", 30.0, BOX))
    shown, sig = signals.split_response(full, 50.0, max_results, 25.0)
    expected = [lab for lab in full["CustomLabels"] if lab["Confidence"] >= 50.0][:max_results]
    assert shown["CustomLabels"] == expected
    assert sig["margin"] == pytest.approx(43.0)  # the smallest gap: star (91) over its box rival square (48)
    assert [b["name"] for b in sig["below"]] == ["square", "circle"]
    assert sig["near_threshold"] == 1 and signals.detect_floor(50.0) == 25.0 and signals.detect_floor(None) is None


def test_margin_between_rival_labels_of_one_box():
    _, sig = signals.split_response(answer(("star", 60.0, BOX), ("square", 35.0, BOX)), 50.0, None, 25.0)
    assert sig["margin"] == pytest.approx(25.0)
    _, classification = signals.split_response(answer(("cat", 70.0, None), ("dog", 66.0, None)), 50.0, None, 25.0)
    assert classification["margin"] == pytest.approx(4.0)


def picture(colour, shift=0, at=(20, 20)) -> bytes:
    img = Image.new("RGB", (120, 90), (230, 230, 230))
    img.paste(colour, (at[0] + shift, at[1], at[0] + 50 + shift, at[1] + 40))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def test_the_descriptor_tells_near_duplicates_from_other_pictures():
    a, a_again, b = picture((200, 20, 20)), picture((200, 20, 20), shift=1), picture((20, 20, 200), at=(65, 45))
    da, da2, db = map(signals.image_descriptor, (a, a_again, b))
    assert len(da) == 40
    assert signals.descriptor_distance(da, da2) < 0.05 < 0.15 < signals.descriptor_distance(da, db)
    assert signals.descriptor_distance(da, None) == 1.0
