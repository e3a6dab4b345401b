"""handle_events (runs of events, micro-batches predicted together) against handle per event."""

from __future__ import annotations

import math
from typing import Any

import pytest

from stratiflow.config import load_config
from stratiflow.learning.batched import batchable
from stratiflow.learning.learner import ModelState
from stratiflow.records import Event
from stratiflow.runner.keyed import Emitted, handle, handle_events
from stratiflow.validation.parse import event_from_object
from tests.helpers import phishing_events


def _events(every_unlabelled: int = 7, bad_every: int = 53) -> list[Event]:
    out = []
    for i, raw in enumerate(phishing_events()[:600]):
        if i % every_unlabelled == 0:
            raw = {**raw, "label": None}
        if i % bad_every == 0:
            raw = {**raw, "features": {**raw["features"], "empty_server_form_handler": "?"}}
        event = event_from_object(raw)
        assert isinstance(event, Event)
        out.append(event)
    return out


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-12 (a batched prediction may differ in its last bits)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in {"cost", "emitted_at"}}


@pytest.mark.parametrize("chunk", [1, 5, 64, 600])
def test_runs_of_events_equal_handle_per_event(chunk):
    cfg = load_config(
        {
            "update": {"mode": "micro_batch", "batch_size": 16},
            "metrics": {"report_every": 50},
        }
    )
    events = _events()
    one = ModelState.new(cfg, "default")
    many = ModelState.new(cfg, "default")
    assert batchable(many, learn=True)  # the batched path is the one under test
    waiting_one: dict[str, Any] = {}
    waiting_many: dict[str, Any] = {}
    expected = Emitted()
    for event in events:
        out = handle(one, event, waiting_one, cfg, now_ms=0)
        expected.predictions += out.predictions
        expected.dead_letters += out.dead_letters
        expected.reports += out.reports
    got = Emitted()
    for start in range(0, len(events), chunk):
        out = handle_events(many, events[start : start + chunk], waiting_many, cfg, now_ms=0)
        got.predictions += out.predictions
        got.dead_letters += out.dead_letters
        got.reports += out.reports

    assert len(got.predictions) == len(expected.predictions) > 500
    for g, e in zip(got.predictions, expected.predictions, strict=True):
        assert (g.id, g.model_version, g.y_pred, g.y_true) == (
            e.id,
            e.model_version,
            e.y_pred,
            e.y_true,
        )
        assert _close(g.proba, e.proba), g.id
    assert [d.to_dict() for d in got.dead_letters] == [d.to_dict() for d in expected.dead_letters]
    assert len(expected.dead_letters) > 5
    # Reports are made at the event that made them due, as handle makes them.
    assert len(got.reports) == len(expected.reports) >= 8
    for g, e in zip(got.reports, expected.reports, strict=True):
        assert _close(_comparable(g), _comparable(e))
    assert waiting_many.keys() == waiting_one.keys()
    assert many.counts == one.counts and many.trained_on == one.trained_on
    assert many.updater.batches == one.updater.batches > 20
