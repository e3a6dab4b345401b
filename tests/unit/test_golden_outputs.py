"""The outputs of fixed configs on fixed inputs do not change by accident.

``tests/golden/expected.json`` was written by the code before the subpackage
restructuring (commit 3f84e91, and the same from d19d49d before the alignment fix);
the code now must give the same predictions, metrics, dead letters and sampling
stats, byte for byte (wall-clock fields and measured costs aside).
"""

from __future__ import annotations

import json

import pytest

from tests.golden.cases import CASES, EXPECTED, run

EXPECTED_OUTPUTS = json.loads(EXPECTED.read_text())


def test_every_case_has_expected_outputs() -> None:
    assert sorted(EXPECTED_OUTPUTS) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_equal_the_golden_ones(name: str) -> None:
    expected, got = EXPECTED_OUTPUTS[name], run(name)
    assert got["final_reports"] == expected["final_reports"]
    for stream in ("predictions", "metrics", "dead_letters", "sampling_stats"):
        assert got[stream] == expected[stream], stream
