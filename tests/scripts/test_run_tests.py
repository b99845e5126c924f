"""`make test`'s runner: the parts' exit codes make one, and "no tests ran" never passes as a whole."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import ROOT


def _runner():
    spec = importlib.util.spec_from_file_location("run_tests", ROOT / "scripts" / "run_tests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("codes, expected", [
    ([0, 0], 0), ([0, 5], 0), ([5, 0], 0),  # a part that selected nothing is fine when the other ran
    ([5, 5], 5),  # nothing ran at all: pytest's "no tests collected", which CI treats as a failure
    ([1, 0], 1), ([0, 1], 1), ([5, 2], 2), ([1, 2], 1),
])
def test_the_parts_exit_codes_make_one(codes, expected):
    assert _runner().combined(codes) == expected
