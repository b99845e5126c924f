"""One coercion of templated values: native objects, their rendered text, and a clear error otherwise."""

import pytest

from rekfeedback.core import templated


@pytest.mark.parametrize("value, expected", [
    (True, True), ("True", True), (" yes ", True), (1, True), (False, False), ("False", False), ("None", False),
    (None, None), ("", None),
])
def test_as_bool(value, expected):
    assert templated.as_bool(value, "start_if_stopped") is expected


def test_as_bool_names_the_argument():
    with pytest.raises(ValueError, match="start_if_stopped must be a boolean"):
        templated.as_bool("maybe", "start_if_stopped")


def test_numbers_from_text_with_bounds_and_defaults():
    assert templated.as_int("3", "chunk_size") == 3
    assert templated.as_int("None", "chunk_size", 7) == 7
    assert templated.as_float(" 0.25 ", "audit_rate", minimum=0, maximum=1) == 0.25
    with pytest.raises(ValueError, match="audit_rate must be from 0 to 1, got '2'"):
        templated.as_float("2", "audit_rate", minimum=0, maximum=1)
    with pytest.raises(ValueError, match="chunk_size must be an integer"):
        templated.as_int("3.5", "chunk_size")
    with pytest.raises(ValueError, match="chunk_size must be a number"):
        templated.as_int(True, "chunk_size")


def test_as_dict_reads_json_and_python_repr_text():
    assert templated.as_dict('{"a": 1}', "merge_summary") == {"a": 1}
    assert templated.as_dict("{'a': None}", "merge_summary") == {"a": None}
    assert templated.as_dict("None", "merge_summary") is None
    with pytest.raises(ValueError, match="merge_summary must be a dict"):
        templated.as_dict("[1, 2]", "merge_summary")
    with pytest.raises(ValueError, match="merge_summary must be a dict or its JSON text"):
        templated.as_dict("{not json", "merge_summary")


def test_as_list_reads_a_rendered_list_or_one_text():
    assert templated.as_list("['s3://b/a.jsonl', 's3://b/b.jsonl']", "answers_uris") == ["s3://b/a.jsonl",
                                                                                       "s3://b/b.jsonl"]
    assert templated.as_list("s3://b/a.jsonl", "answers_uris") == ["s3://b/a.jsonl"]
    assert templated.as_list(["s3://b/a.jsonl", None, "None"], "answers_uris") == ["s3://b/a.jsonl"]
    assert templated.as_list("[]", "answers_uris") == templated.as_list(None, "answers_uris") == []
    with pytest.raises(ValueError, match="answers_uris must be a list"):
        templated.as_list({"a": 1}, "answers_uris")


def test_uri_lists_accept_the_shapes_upstream_tasks_return():
    sensor_xcom = {"answers_uri": "s3://bkt/t/answers/ground-truth.jsonl", "counts": {"human": 3}}
    assert templated.as_uri_list([sensor_xcom, None, ["s3://bkt/a"], "s3://bkt/b"], "answers_uris") == [
        "s3://bkt/t/answers/ground-truth.jsonl", "s3://bkt/a", "s3://bkt/b"]
    assert templated.as_uri_list('["s3://bkt/c"]', "answers_uris") == ["s3://bkt/c"]
    assert templated.as_uri_list(None, "answers_uris") == []
    with pytest.raises(ValueError, match="answers_uris item .* has no answers_uri"):
        templated.as_uri_list([{"counts": {}}], "answers_uris")
