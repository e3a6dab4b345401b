"""The JSON Schemas in ``schemas/`` against records the code really produces.

Every record validated here comes out of stratiflow itself (``river_events``,
``replay``'s predictions, metrics reports, dead letters and sampling stats,
``step``, ``parse_event`` + ``DeadLetter``), encoded the way the job writes it
to Kafka (``to_json``), so a field added or changed in the code without a
schema update fails this test, and so does a schema change the code does not
follow. The metrics runs between them make every nullable field both null and
set, and every report is checked against the reconciliation rules the schema
states.
"""

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from stratiflow.config import Config, load_config
from stratiflow.io.sources import river_events
from stratiflow.learning.learner import ModelState, label_policy, step
from stratiflow.records import DeadLetter, Event, Rejection, SourceRef, to_json
from stratiflow.runner.replay import ReplayResult, replay
from stratiflow.validation.parse import REASONS, LabelPolicy, Limits, event_from_object, parse_event
from tests.helpers import (
    FULL_METRICS,
    T0,
    cfg_with,
    clocked,
    delayed_stream,
    late_labels,
    probe_of,
)

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"
NAMES = (
    "event",
    "prediction",
    "metrics",
    "dead_letter",
    "sampling_stats",
    "model_event",
    "label_request",
)
N = 50


def load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


VALIDATORS = {name: Draft202012Validator(load(name)) for name in NAMES}


def wire(record: dict[str, Any]) -> Any:
    """The record as a consumer of the topic sees it: through the job's JSON encoder."""
    return json.loads(to_json(record))


def assert_valid(name: str, record: dict[str, Any]) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in VALIDATORS[name].iter_errors(wire(record))
    ]
    assert not errors, f"{name} record does not match its schema: {errors}\n{record}"


def assert_invalid(name: str, record: dict[str, Any]) -> None:
    assert not VALIDATORS[name].is_valid(record), f"{name} schema accepted {record}"


# --- the schemas themselves ---------------------------------------------------------------


def property_schemas(schema: dict[str, Any], path: str = ""):
    """Every schema that describes a field of the record (not the if/then helpers)."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}/{name}", sub
        yield from property_schemas(sub, f"{path}/{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield f"{path}/*", extra
        yield from property_schemas(extra, f"{path}/*")
    for name, sub in schema.get("$defs", {}).items():
        yield from property_schemas(sub, f"{path}/$defs/{name}")


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_draft_2020_12_and_documented(name):
    schema = load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://stratiflow.dev/schemas/{name}.schema.json"
    assert schema["title"] and schema["description"]
    undocumented = [p for p, sub in property_schemas(schema) if not sub.get("description")]
    assert not undocumented, f"properties without a description: {undocumented}"


def test_dead_letter_reasons_are_exactly_the_code_reasons():
    enum = load("dead_letter")["properties"]["reason"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == set(REASONS) | {"invalid_event"}


# --- events -------------------------------------------------------------------------------


def source_events() -> list[dict[str, Any]]:
    return [
        *river_events("phishing", n=N, keys=("a", "b"), unlabelled_fraction=0.2),
        *river_events("led", n=N),
        *river_events("agrawal", n=10),  # mixed int/float/str-like features
        *river_events("stagger", n=10),  # string features
    ]


def test_river_events_match_the_event_schema_and_the_validator():
    events = source_events()
    assert any(e["label"] is None for e in events)
    for e in events:
        assert_valid("event", e)
        parsed = parse_event(to_json(e).encode())
        assert isinstance(parsed, Event), parsed
        assert_valid("event", parsed.to_dict())


GOOD_EVENT = {
    "id": "e1",
    "ts": 1_700_000_000_000,
    "features": {"a": 1.5, "b": "red", "c": None, "d": True, "e": 3},
    "label": "spam",
    "key": "k",
}


@pytest.mark.parametrize(
    "obj",
    [
        GOOD_EVENT,
        {"id": "x", "ts": 0, "features": {"a": 1}},
        {**GOOD_EVENT, "label": None, "key": None},
        {**GOOD_EVENT, "label": 3},
        {**GOOD_EVENT, "label": False},
        {**GOOD_EVENT, "ts": 2**53 - 1},
        {**GOOD_EVENT, "producer": "extra fields are ignored", "meta": {"x": [1]}},
    ],
)
def test_schema_and_validator_accept_the_same_good_events(obj):
    assert isinstance(event_from_object(obj), Event)
    assert_valid("event", obj)


def without(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != name}


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (without(GOOD_EVENT, "id"), "missing_field"),
        (without(GOOD_EVENT, "ts"), "missing_field"),
        (without(GOOD_EVENT, "features"), "missing_field"),
        ({**GOOD_EVENT, "id": ""}, "bad_id"),
        ({**GOOD_EVENT, "id": 7}, "bad_id"),
        ({**GOOD_EVENT, "id": None}, "bad_id"),
        ({**GOOD_EVENT, "ts": "yesterday"}, "bad_timestamp"),
        ({**GOOD_EVENT, "ts": 1.5}, "bad_timestamp"),
        ({**GOOD_EVENT, "ts": -1}, "bad_timestamp"),
        ({**GOOD_EVENT, "ts": True}, "bad_timestamp"),
        ({**GOOD_EVENT, "ts": 2**53}, "bad_timestamp"),
        ({**GOOD_EVENT, "key": ""}, "bad_key"),
        ({**GOOD_EVENT, "key": 3}, "bad_key"),
        ({**GOOD_EVENT, "features": [1, 2]}, "bad_features"),
        ({**GOOD_EVENT, "features": {}}, "bad_features"),
        ({**GOOD_EVENT, "features": {"a": {"nested": 1}}}, "bad_feature_value"),
        ({**GOOD_EVENT, "features": {"a": [1]}}, "bad_feature_value"),
        ({**GOOD_EVENT, "label": 1.5}, "bad_label"),
        ({**GOOD_EVENT, "label": ["a"]}, "bad_label"),
        ({**GOOD_EVENT, "label": {"a": 1}}, "bad_label"),
    ],
)
def test_schema_and_validator_reject_the_same_bad_events(obj, reason):
    result = event_from_object(obj)
    assert isinstance(result, Rejection) and result.reason == reason
    assert_invalid("event", obj)


# --- predictions and metrics --------------------------------------------------------------


@dataclass
class Run:
    cfg: Config
    result: ReplayResult

    @property
    def predictions(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.result.predictions]

    @property
    def reports(self) -> list[dict[str, Any]]:
        return self.result.reports


def replayed(events: list[dict[str, Any]], **sections: Any) -> Run:
    cfg = cfg_with(**sections)
    return Run(cfg, replay(events, cfg, now_ms=T0))


@pytest.fixture(scope="module")
def binary_run() -> Run:
    """The default pipeline, 20% unlabelled (waiting for labels forever), every view on."""
    events = list(river_events("phishing", n=N, unlabelled_fraction=0.2, start_ts=T0))
    return replayed(events, metrics={**FULL_METRICS, "probe": probe_of(events)})


@pytest.fixture(scope="module")
def multiclass_run() -> Run:
    return replayed(
        list(river_events("led", n=N)),
        model=["tree.HoeffdingTreeClassifier"],
        metrics={"report_every": 10, "window": 0},
    )


@pytest.fixture(scope="module")
def tree_binary_run() -> Run:
    # A tree has no answer for the first event: y_pred null, proba empty, not scored.
    return replayed(
        list(river_events("phishing", n=N)),
        model=["tree.HoeffdingTreeClassifier"],
        metrics={"report_every": 10},
    )


@pytest.fixture(scope="module")
def delayed_run() -> Run:
    stream = delayed_stream()
    events = [r for r in stream if "features" in r]
    return replayed(
        stream, metrics={**FULL_METRICS, "probe": probe_of(events)}, labels={"ttl": "150ms"}
    )


@pytest.fixture(scope="module")
def micro_batch_run() -> Run:
    events = list(river_events("phishing", n=N, seed=4))
    for e in events[7::9]:  # a missing feature: rows differ, learn_many cannot take the batch
        e["features"] = {**e["features"], next(iter(e["features"])): None}
    return replayed(
        events, update={"mode": "micro_batch", "batch_size": 8}, metrics={"report_every": 10}
    )


@pytest.fixture(scope="module")
def clocked_reports() -> list[dict[str, Any]]:
    events = list(river_events("phishing", n=N, start_ts=T0))
    return clocked(events, cfg_with(metrics={"report_every": 10}))


RUNS = ("binary_run", "multiclass_run", "tree_binary_run", "delayed_run", "micro_batch_run")


@pytest.fixture(scope="module")
def all_reports(request, clocked_reports) -> list[dict[str, Any]]:
    runs = [request.getfixturevalue(name) for name in RUNS]
    return [wire(r) for run in runs for r in run.reports] + [wire(r) for r in clocked_reports]


def final(run: Run, key: str = "default") -> dict[str, Any]:
    return wire(next(r for r in run.reports if r["final"] and r["key"] == key))


@pytest.mark.parametrize("fixture", RUNS)
def test_real_predictions_match_the_prediction_schema(fixture, request):
    run = request.getfixturevalue(fixture)
    assert len(run.predictions) >= N
    for p in run.predictions:
        assert_valid("prediction", p)


def test_the_runs_cover_every_prediction_shape(binary_run, multiclass_run, tree_binary_run):
    binary, multiclass = binary_run.predictions, multiclass_run.predictions
    tree = tree_binary_run.predictions
    assert any("y_true" not in p for p in binary)  # unlabelled
    assert {type(p["y_pred"]) for p in binary} == {bool}
    assert set(binary[-1]["proba"]) == {"true", "false"}
    assert tree[0]["y_pred"] is None and tree[0]["proba"] == {}
    assert any(isinstance(p["y_pred"], int) and len(p["proba"]) > 2 for p in multiclass)


@pytest.mark.parametrize("fixture", RUNS)
def test_real_metrics_reports_match_the_metrics_schema(fixture, request):
    reports = request.getfixturevalue(fixture).reports
    assert len(reports) >= 3 and reports[-1]["final"] is True
    for r in reports:
        assert_valid("metrics", r)


def test_clocked_metrics_reports_match_the_metrics_schema(clocked_reports):
    assert len(clocked_reports) >= 3
    for r in clocked_reports:
        assert_valid("metrics", r)


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    """``node`` and what it refers to (``$ref``) or may be (``anyOf``)."""
    out = [node]
    if "$ref" in node:
        out += resolve(schema, schema["$defs"][node["$ref"].rsplit("/", 1)[1]])
    for branch in node.get("anyOf", []):
        out += resolve(schema, branch)
    return out


def nullable_fields(schema: dict[str, Any], node: dict[str, Any], path: str = ""):
    """Paths (``a/b``) of the record's fields that the schema lets be null."""
    parts = resolve(schema, node)
    if path and any(p.get("type") == "null" or "null" in (p.get("type") or []) for p in parts):
        yield path
    for part in parts:
        for name, sub in part.get("properties", {}).items():
            if name != "per_class":
                yield from nullable_fields(schema, sub, f"{path}/{name}".lstrip("/"))


def values_at(record: dict[str, Any], path: str) -> list[Any]:
    """The value at ``path``, or nothing when a parent is null (rolling/n when rolling is)."""
    *parents, last = path.split("/")
    for name in parents:
        record = record[name]
        if record is None:
            return []
    return [record[last]]


def test_the_reports_cover_every_nullable_field_null_and_not(all_reports):
    schema = load("metrics")
    fields = sorted(set(nullable_fields(schema, schema)))
    assert "rolling" in fields and "cost/learn_us/p99" in fields  # the walk found them
    assert "cumulative/roc_auc" in fields and "stability/probe_changed" in fields
    uncovered = []
    for path in fields:
        values = [v for r in all_reports for v in values_at(r, path)]
        if None not in values or all(v is None for v in values):
            uncovered.append(path)
    assert not uncovered, f"fields never null, or never set, in the real reports: {uncovered}"


def test_the_reports_cover_the_named_cases(
    binary_run, multiclass_run, tree_binary_run, delayed_run, micro_batch_run, clocked_reports
):
    # Empty: a key that only ever saw a label record.
    ghost = final(delayed_run, "ghost")
    assert ghost["event_ts"] is None and ghost["counts"]["seen"] == 0
    assert ghost["cumulative"]["n"] == 0 and ghost["cumulative"]["accuracy"] is None
    assert ghost["cumulative"]["per_class"] == {} and ghost["fading"]["n"] == 0
    assert ghost["labels"]["held"] == 1 and ghost["labels"]["delay_ms"]["p50"] is None
    # Every view, and a probe set.
    full = final(binary_run)
    assert full["rolling"]["n"] == 10 and 0 < full["fading"]["n"] < 10
    assert isinstance(full["fading"]["per_class"]["true"]["support"], float)
    assert full["cumulative"]["roc_auc"] is not None and full["stability"]["probe_size"] == 3
    assert full["stability"]["probe_changed"] is not None
    assert full["stability"]["spread"]["accuracy"]["std"] is not None
    assert full["labels"]["waiting"] == full["counts"]["unlabelled"] > 0
    # Multiclass, no rolling window, no fading: no AUC.
    multi = final(multiclass_run)
    assert multi["rolling"] is None and multi["fading"] is None
    assert multi["cumulative"]["roc_auc"] is None and len(multi["cumulative"]["per_class"]) > 2
    assert multi["stability"]["reports"] == 0
    assert multi["stability"]["spread"]["macro_f1"] == {"std": None, "range": None}
    # A tree with no answer at first: predicted, learned, not scored.
    tree = tree_binary_run.reports[0]["counts"]
    assert tree["scored"] < tree["predicted"] == tree["learned"]
    # Delayed labels: every outcome.
    labels = final(delayed_run)["labels"]
    for outcome in ("joined", "unknown", "duplicate", "expired", "event_rejected", "never_came"):
        assert labels[outcome] > 0, outcome
    assert labels["waiting"] > 0 and labels["delay_ms"]["count"] == labels["joined"]
    assert final(delayed_run)["counts"]["rejected"] == 1
    # Micro-batches: with learn_many, with the fallback loop, and examples still buffered.
    batched = micro_batch_run.reports
    assert final(micro_batch_run)["update"]["mode"] == "micro_batch"
    assert final(micro_batch_run)["update"]["batches"] > 0
    assert final(micro_batch_run)["update"]["fallback_batches"] > 0
    assert any(r["counts"]["buffered"] > 0 for r in batched)
    assert final(micro_batch_run)["counts"]["buffered"] == 0
    # A wall clock that moves: a throughput.
    assert clocked_reports[0]["cost"]["events_per_s"] is None
    # 10 ms of wall clock per event; the final report follows the last one with no new events.
    assert [r["cost"]["events_per_s"] for r in clocked_reports[1:]] == [100.0] * 4 + [0.0]


def test_the_reports_reconcile(all_reports, delayed_run):
    """The rules the schema and docs/records.md state, on every real report."""
    for r in all_reports:
        c, labels = r["counts"], r["labels"]
        assert c["seen"] == c["predicted"] + c["rejected"], r
        assert c["predicted"] == c["labelled"] + c["unlabelled"], r
        assert labels["received"] == sum(
            labels[k]
            for k in ("joined", "unknown", "duplicate", "expired", "event_rejected", "held")
        ), r
        # Delayed labels are on in every run (labels.source: events, the default).
        assert c["unlabelled"] == labels["waiting"] + labels["joined"] + labels["never_came"], r
        assert labels["delay_ms"]["count"] == labels["joined"]
        assert r["model_version"] == c["learned"] == sum(r["trained_on"].values())
        assert r["cost"]["predict_us"]["count"] == c["predicted"]
        assert r["cost"]["learn_us"]["count"] == c["learned"]
        assert r["cumulative"]["n"] == c["scored"]
        for name in ("cumulative", "rolling"):
            view = r[name]
            if view is not None:
                assert sum(k["support"] for k in view["per_class"].values()) == view["n"]
        if r["final"]:
            assert c["buffered"] == 0
    waiting = delayed_run.result.waiting
    for key, state in delayed_run.result.states.items():
        assert state.labels.waiting == len(waiting[key])


# --- dead letters -------------------------------------------------------------------------
# --- dead letters -------------------------------------------------------------------------

GOOD_RAW = to_json(GOOD_EVENT).encode()
BAD_PAYLOADS: list[tuple[bytes | None, str]] = [
    (None, "empty_payload"),
    (b"", "empty_payload"),
    (b"\xff\xfe{", "not_utf8"),
    (b"{not json", "invalid_json"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    (b'{"id": "a", "ts": 1, "features": {"x": NaN}}', "non_finite_number"),
    (b'{"id": "a", "ts": 1, "features": {"x": -Infinity}}', "non_finite_number"),
    (b"[1, 2]", "not_an_object"),
    (b'{"ts": 1, "features": {"a": 1}}', "missing_field"),
    (b'{"id": "", "ts": 1, "features": {"a": 1}}', "bad_id"),
    (b'{"id": "a", "ts": 1.5, "features": {"a": 1}}', "bad_timestamp"),
    (b'{"id": "a", "ts": 1, "key": 3, "features": {"a": 1}}', "bad_key"),
    (b'{"id": "a", "ts": 1, "features": {}}', "bad_features"),
    (b'{"id": "a", "ts": 1, "features": {"a": [1]}}', "bad_feature_value"),
    (b'{"id": "a", "ts": 1, "features": {"a": 1}, "label": 0.5}', "bad_label"),
    ('{"id": "\u00e9", "ts": -1, "features": {"a": 1}}'.encode(), "bad_timestamp"),
]


def dead_letters() -> list[dict[str, Any]]:
    """Dead letters made the way operators/parse.py and operators/model.py make them."""
    letters = []
    for i, (raw, _) in enumerate(BAD_PAYLOADS):
        source = SourceRef("events", i % 3, 1000 + i) if i % 2 else None
        rejection = parse_event(raw, source)
        assert isinstance(rejection, Rejection)
        letters.append(DeadLetter.of(rejection, raw, source, at=1_700_000_000_000 + i))
    # Rejections that depend on configuration rather than on the payload alone.
    too_large = parse_event(GOOD_RAW, limits=Limits(max_payload_bytes=10))
    binary = parse_event(GOOD_RAW, label_policy=LabelPolicy(binary=True))
    too_many = parse_event(GOOD_RAW, limits=Limits(max_features=2))
    future = parse_event(GOOD_RAW, limits=Limits(latest_ts=0))
    for rejection in (too_large, binary, too_many, future):
        assert isinstance(rejection, Rejection)
        letters.append(DeadLetter.of(rejection, GOOD_RAW, SourceRef("events", 0, 7), at=1))
    # The model raises on a feature it cannot use (operators/model.py).
    cfg = load_config(None)
    state = ModelState.new(cfg, "k")
    assert label_policy(state.model).binary
    event = parse_event(
        b'{"id": "m", "ts": 5, "key": "k", "features": {"x": "text"}, "label": true}',
        SourceRef("events", 1, 42),
    )
    assert isinstance(event, Event)
    out = step(state, event, now_ms=9)
    assert out.rejection is not None
    raw = to_json(event.to_dict()).encode()
    letters.append(DeadLetter.of(out.rejection, raw, event.source, at=9, key=event.key))
    # An extreme value overflows the scaler: the model's probabilities become NaN.
    overflow = ModelState.new(cfg, "k")
    for i, x in enumerate([1.0, 2.0, 1e308, -1e308, 1e308]):
        extreme = Event(f"o{i}", 5, {"x": x}, label=i % 2 == 0, key="k")
        out = step(overflow, extreme, now_ms=9)
        if out.rejection is not None:
            raw = to_json(extreme.to_dict()).encode()
            letters.append(DeadLetter.of(out.rejection, raw, None, at=9, key="k"))
    # Delayed labels the join refuses (the model operator's dead letters, through replay).
    letters += label_dead_letters()
    # A label record while labels.source is none (operators/parse.py).
    label = b'{"id": "a", "label": true, "ts": 3}'
    disabled = parse_event(label, SourceRef("events", 0, 3), labels=False)
    assert isinstance(disabled, Rejection) and disabled.reason == "labels_disabled"
    letters.append(DeadLetter.of(disabled, label, SourceRef("events", 0, 3), at=3))
    # Label records with a bad confidence or annotator (curation.label_filter reads them).
    for i, bad in enumerate(
        (b'{"id": "a", "label": true, "ts": 3, "confidence": 1.5}',
         b'{"id": "a", "label": true, "ts": 3, "annotator": 7}'),
    ):  # fmt: skip
        refused = parse_event(bad, SourceRef("labels", 0, 5 + i), labels=True)
        assert isinstance(refused, Rejection), refused
        letters.append(DeadLetter.of(refused, bad, SourceRef("labels", 0, 5 + i), at=5))
    # An event on the labels topic (operators/parse.py, labels_only).
    on_labels = parse_event(GOOD_RAW, SourceRef("labels", 0, 4))
    assert isinstance(on_labels, Event)
    not_label = Rejection("not_a_label", "an event on the labels topic")
    letters.append(DeadLetter.of(not_label, GOOD_RAW, SourceRef("labels", 0, 4), at=4))
    letters += feature_rule_dead_letters()
    # A validator bug (operators/parse.py catches it as invalid_event).
    crash = Rejection("invalid_event", "validation failed: RuntimeError: boom")
    letters.append(DeadLetter.of(crash, b"\x00\x9f", SourceRef("events", 0, 0), at=2))
    return [letter.to_dict() for letter in letters]


def feature_rule_dead_letters() -> list[DeadLetter]:
    """validation.features rejections: at parse time, and an outlier in the model operator."""
    cfg = load_config(
        {
            "validation": {
                "features": {
                    "x": {"type": "number", "min": -10, "max": 10, "outliers": "reject"},
                    "colour": {"type": "string", "allowed": ["red", "blue"], "missing": "reject"},
                },
                "unknown_features": "reject",
                "outlier_warmup": 5,
            }
        }
    )
    letters, source = [], SourceRef("events", 2, 9)
    for features, reason in [
        ({"x": 1, "colour": "red", "extra": 1}, "unknown_feature"),
        ({"x": 1}, "feature_missing"),
        ({"x": "one", "colour": "red"}, "feature_wrong_type"),
        ({"x": 11, "colour": "red"}, "feature_out_of_range"),
        ({"x": 1, "colour": "green"}, "feature_not_allowed"),
    ]:
        raw = to_json({"id": "f", "ts": 1, "features": features}).encode()
        rejection = parse_event(raw, source, rules=cfg.validation)
        assert isinstance(rejection, Rejection) and rejection.reason == reason, rejection
        letters.append(DeadLetter.of(rejection, raw, source, at=5))
    state = ModelState.new(cfg, "k")
    for i, x in enumerate([0.1, 0.2, 0.3, 0.2, 0.1, 0.2, 9.5]):
        event = Event(f"q{i}", i, {"x": x, "colour": "red"}, label=i % 2 == 0, key="k")
        out = step(state, event, now_ms=9)
        if out.rejection is not None:
            raw = to_json(event.to_dict()).encode()
            letters.append(DeadLetter.of(out.rejection, raw, source, at=9, key="k"))
    assert letters[-1].reason == "feature_outlier" and state.cleaner.outliers_rejected == 1
    return letters


LABEL_REASONS = {"label_unknown_id", "label_duplicate", "label_expired", "label_event_rejected"}


def label_dead_letters() -> list[DeadLetter]:
    """The delayed-label stream's dead letters, as the model operator makes them."""
    cfg = cfg_with(labels={"ttl": "150ms"})
    letters = replay(delayed_stream(), cfg, now_ms=T0).dead_letters
    assert {d.reason for d in letters} == LABEL_REASONS | {"model_rejected_input"}
    return letters


def test_label_dead_letters_carry_the_label_record_and_key():
    for letter in label_dead_letters():
        d = wire(letter.to_dict())
        assert_valid("dead_letter", d)
        assert d["key"] == "default" and d["at"] == T0
        # keyed.handle passes label_event_rejected only the bytes the label was read from:
        # none here (replay is given dicts), so its raw is null, unlike the others'.
        if d["reason"] in LABEL_REASONS - {"label_event_rejected"}:
            assert set(json.loads(d["raw"])) >= {"id", "label", "ts"}, d


def test_bad_payloads_are_rejected_for_the_expected_reason():
    for raw, reason in BAD_PAYLOADS:
        result = parse_event(raw)
        assert isinstance(result, Rejection) and result.reason == reason, (raw[:40], result)


def test_real_dead_letters_match_the_dead_letter_schema():
    letters = dead_letters()
    for letter in letters:
        assert_valid("dead_letter", letter)
    # Every reason the schema allows is produced by the code above...
    assert {d["reason"] for d in letters} == set(REASONS) | {"invalid_event"}
    # ...with every raw encoding and with and without a source.
    assert {d["raw_encoding"] for d in letters} == {"utf-8", "base64", "none"}
    assert {d["topic"] is None for d in letters} == {True, False}
    assert any(d["key"] == "k" for d in letters)


# --- the schemas reject wrong records (so this test can fail) -----------------------------


DELETE = object()


def mutated(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``record`` with the field at ``a/b/c`` set to ``value`` (or removed)."""
    out = copy.deepcopy(record)
    *parents, last = path.split("/")
    target = out
    for p in parents:
        target = target[p]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return out


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("id", DELETE),
        ("id", ""),
        ("ts", DELETE),
        ("ts", -1),
        ("ts", "1700000000000"),
        ("ts", 1.5),
        ("features", DELETE),
        ("features", {}),
        ("features", [1.0]),
        ("features/a", {"nested": 1}),
        ("label", 0.5),
        ("label", ["spam"]),
        ("key", ""),
    ],
)
def test_event_schema_rejects(path, value):
    assert_valid("event", GOOD_EVENT)
    assert_invalid("event", mutated(GOOD_EVENT, path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("id", DELETE),
        ("y_pred", DELETE),
        ("y_pred", 0.5),
        ("proba", DELETE),
        ("proba/true", 1.5),
        ("proba/true", "0.5"),
        ("model_version", -1),
        ("emitted_at", None),
        ("y_true", None),
        ("unexpected", 1),
    ],
)
def test_prediction_schema_rejects(binary_run, path, value):
    prediction = wire(binary_run.predictions[-1])
    prediction.setdefault("y_true", True)
    assert_valid("prediction", prediction)
    assert_invalid("prediction", mutated(prediction, path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("schema_version", 1),
        ("schema_version", DELETE),
        ("final", "yes"),
        ("report", 0),
        ("event_ts", -1),
        ("unexpected", 1),
        ("counts/seen", DELETE),
        ("counts/seen", -1),
        ("counts/seen", 1.5),
        ("counts/buffered", DELETE),
        ("counts/unexpected", 1),
        ("labels", DELETE),
        ("labels/received", -1),
        ("labels/held", DELETE),
        ("labels/unexpected", 1),
        ("labels/delay_ms/count", DELETE),
        ("labels/delay_ms/p50", None),  # count > 0
        ("labels/delay_ms/p99", -1.0),
        ("trained_on/true", 1.5),
        ("cumulative", None),
        ("cumulative/n", 2.5),
        ("cumulative/n", DELETE),
        ("cumulative/accuracy", 1.5),
        ("cumulative/accuracy", None),  # n > 0
        ("cumulative/log_loss", DELETE),
        ("cumulative/log_loss", "0.3"),
        ("cumulative/kappa", 1.5),
        ("cumulative/roc_auc", -0.1),
        ("cumulative/macro/f1", 1.5),
        ("cumulative/macro/unexpected", 1),
        ("cumulative/weighted", DELETE),
        ("cumulative/per_class", []),
        ("cumulative/per_class", {}),  # n > 0
        ("cumulative/per_class/true/support", 1.5),
        ("cumulative/per_class/true/unexpected", 1),
        ("rolling", DELETE),
        ("rolling", "none"),
        ("rolling/n", 2.5),
        ("rolling/per_class/true/support", 2.5),
        ("fading", DELETE),
        ("fading/n", "1"),
        ("fading/mcc", -1.5),
        ("stability", DELETE),
        ("stability/reports", -1),
        ("stability/spread/accuracy/std", -1.0),
        ("stability/spread/macro_f1", DELETE),
        ("stability/probe_changed", 1.5),
        ("stability/probe_size", 0),  # probe_changed is set
        ("update/mode", "sometimes"),
        ("update/batches", DELETE),
        ("cost/predict_us/p50", "fast"),
        ("cost/learn_us", DELETE),
        ("cost/events_per_s", -1.0),
        ("cost/model_bytes", 1.5),
        ("cost/unexpected", 1),
    ],
)
def test_metrics_schema_rejects(delayed_run, path, value):
    report = final(delayed_run)
    assert report["labels"]["delay_ms"]["count"] > 0 and report["stability"]["probe_changed"] == 0
    assert_valid("metrics", report)
    assert_invalid("metrics", mutated(report, path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("cumulative/accuracy", 0.5),  # n is 0
        ("cumulative/per_class", {"true": {"precision": 1, "recall": 1, "f1": 1, "support": 0}}),
        ("fading/log_loss", 0.5),
        ("labels/delay_ms/p50", 1.0),  # count is 0
        ("cost/predict_us/max", 1.0),
    ],
)
def test_metrics_schema_rejects_values_in_an_empty_report(delayed_run, path, value):
    report = final(delayed_run, "ghost")
    assert_valid("metrics", report)
    assert_invalid("metrics", mutated(report, path, value))


def test_metrics_schema_allows_new_metrics_in_metric_sets_only(binary_run):
    """The metric sets are open (a metric may be added without a new schema_version);
    everything else is closed, so a field the code adds elsewhere fails this file's tests."""
    report = final(binary_run)
    for view in ("cumulative", "rolling", "fading"):
        report[view]["brier"] = 0.1
    assert_valid("metrics", report)
    first = next(iter(report["cumulative"]["per_class"].values()))
    first["support"] = -1
    assert_invalid("metrics", report)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("reason", "bad_vibes"),
        ("reason", DELETE),
        ("detail", None),
        ("raw_encoding", "latin-1"),
        ("raw_encoding", "none"),  # raw is not null
        ("raw", None),  # raw_encoding is not none
        ("partition", None),  # topic and offset are set
        ("offset", -1),
        ("at", DELETE),
        ("unexpected", 1),
    ],
)
def test_dead_letter_schema_rejects(path, value):
    letter = wire(
        DeadLetter.of(Rejection("invalid_json", "x"), b"{", SourceRef("t", 0, 1), 5).to_dict()
    )
    assert_valid("dead_letter", letter)
    assert_invalid("dead_letter", mutated(letter, path, value))


def test_dead_letter_schema_rejects_bad_base64():
    letter = wire(DeadLetter.of(Rejection("not_utf8", "x"), b"\xff\x00", None, 5).to_dict())
    assert letter["raw_encoding"] == "base64"
    assert_valid("dead_letter", letter)
    assert_invalid("dead_letter", {**letter, "raw": "not base64!"})


# --- sampling stats -----------------------------------------------------------------------

SAMPLERS = {
    "uniform": {"strategy": "uniform", "rate": 0.5},
    "balanced": {"strategy": "balanced", "budget": 6, "oversample": True},
    "balanced-decay": {"strategy": "balanced", "budget": 6, "decay": 0.7},
    "target-decay": {
        "strategy": "target",
        "budget": 6,
        "target": {"true": 0.3, "false": 0.7},
        "decay": 0.5,
    },
    "undersample": {"strategy": "undersample"},
    "oversample": {"strategy": "oversample", "synthetic": True, "capacity": 10},
}


def sampling_events() -> list[dict[str, Any]]:
    """Two keys in order, some late events, and a late event of a class with no window left."""
    events = list(
        river_events(
            "phishing",
            n=300,
            start_ts=T0,  # late events move 2 s back: they must stay valid (ts >= 0)
            interval_ms=10,
            keys=("a", "b"),
            unlabelled_fraction=0.1,
            seed=2,
        )
    )
    for e in events[9::10]:
        e["ts"] -= 2_000  # far behind the watermark: late
    end = events[-1]["ts"] + 5_000

    def tail(i: int, ts: int, label: bool) -> dict[str, Any]:
        return {"id": f"z{i}", "ts": ts, "features": {"x": float(i)}, "label": label, "key": "z"}

    # key z: window [end, end+500) has both classes, the next one only false; then a late
    # true, whose class has no open window left: a window-null record at the end.
    late = tail(3, end + 1, True)
    return [*events, tail(0, end, True), tail(1, end, False), tail(2, end + 700, False), late]


@pytest.fixture(scope="module")
def sampling_stats() -> dict[str, list[dict[str, Any]]]:
    events = sampling_events()
    out = {}
    for name, settings in SAMPLERS.items():
        section = {"window": "500ms", "max_out_of_orderness": 0, **settings}
        cfg = load_config({"sampling": section})
        out[name] = replay(events, cfg, now_ms=1_700_000_000_000).stats
    return out


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_real_sampling_stats_match_the_sampling_stats_schema(sampling_stats, name):
    records = sampling_stats[name]
    assert len(records) > 10
    for record in records:
        assert_valid("sampling_stats", record)


def test_the_sampling_stats_cover_every_shape(sampling_stats):
    records = [r for rs in sampling_stats.values() for r in rs]
    classes = [c for r in records for c in r["classes"].values()]
    assert {r["strategy"] for r in records} == set(
        load("sampling_stats")["properties"]["strategy"]["enum"]
    )
    assert {r["key"] for r in records} == {"a", "b", "z"}
    late_only = [r for r in records if r["window"] is None]
    assert late_only and all(r["classes"]["true"]["late"] == 1 for r in late_only)
    assert all(r["trained_mix"] == {} and r["trained"] == 0 for r in late_only)
    assert any("priors" in r for r in records) and any("priors" not in r for r in records)
    assert any(c["late"] for c in classes if c["seen"])  # late count on a window record
    assert any(c["synthetic"] for c in classes) and any(c["duplicated"] for c in classes)
    assert any(c["available"] < c["seen"] for c in classes)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("schema_version", 2),
        ("key", ""),
        ("strategy", "none"),
        ("window", DELETE),
        ("window/start", "0"),
        ("window/end", DELETE),
        ("window/size", 500),
        ("classes/true/seen", -1),
        ("classes/true/trained", 1.5),
        ("classes/true/late", DELETE),
        ("classes/true/unexpected", 1),
        ("classes/true", 3),
        ("trained", -1),
        ("trained_mix/true", 1.5),
        ("trained_mix/true", "0.5"),
        ("cumulative_trained/true", 0.5),
        ("priors/true", -1.0),
        ("priors", [1.0]),
        ("emitted_at", None),
        ("unexpected", 1),
    ],
)
def test_sampling_stats_schema_rejects(sampling_stats, path, value):
    record = wire(next(r for r in sampling_stats["target-decay"] if r["window"] and r["trained"]))
    assert "true" in record["classes"] and "true" in record["trained_mix"]
    assert_valid("sampling_stats", record)
    assert_invalid("sampling_stats", mutated(record, path, value))


# -- drift: model events, generations in predictions, the metrics record's drift section ----


@pytest.fixture(scope="module")
def drifting_runs() -> list[ReplayResult]:
    """Replays of a drifting stream with each adaptation (warnings need a binary detector)."""
    stream = [event_from_object(e) for e in river_events("agrawal_drift", n=7000, seed=3)]
    runs = []
    for section in (
        {"detector": "drift.ADWIN", "adaptation": "reset"},
        {"detector": "drift.binary.DDM", "adaptation": "background", "min_scored": 200},
        {"detector": {"drift.ADWIN": {"delta": 0.01}}, "signal": "loss"},
    ):
        cfg = cfg_with(drift=section, metrics={"report_every": 500})
        runs.append(replay(stream, cfg, now_ms=T0))
    tree = [{"tree.HoeffdingTreeClassifier": {"grace_period": 50}}]
    with_candidates = cfg_with(
        candidates=[{"name": "tree", "model": tree}], metrics={"report_every": 500}
    )
    runs.append(replay(stream, with_candidates, now_ms=T0))
    return runs


def test_model_events_match_their_schema(drifting_runs: list[ReplayResult]) -> None:
    kinds = set()
    for result in drifting_runs:
        for record in result.model_events:
            assert_valid("model_event", record)
            kinds.add(record["type"])
    assert {
        "drift",
        "drift_warning",
        "model_reset",
        "background_start",
        "model_swap",
        "promotion",
    } <= kinds


def test_predictions_and_reports_of_later_generations_match_their_schemas(
    drifting_runs: list[ReplayResult],
) -> None:
    for result in drifting_runs:
        for prediction in result.predictions[::50]:
            assert_valid("prediction", prediction.to_dict())
        for report in result.reports:
            assert_valid("metrics", report)
    assert max(p.generation for p in drifting_runs[0].predictions) > 0
    assert drifting_runs[0].reports[-1]["drift"]["resets"] > 0
    assert {p.model for p in drifting_runs[-1].predictions} == {"main", "tree"}
    assert drifting_runs[-1].reports[-1]["candidates"]["promotions"] > 0


@pytest.mark.parametrize(
    ("path", "value"),
    [("type", "retrain"), ("metric/before", -0.5), ("generation/after", -1), ("scored", 0)],
)
def test_model_event_schema_rejects_wrong_values(
    drifting_runs: list[ReplayResult], path: str, value: Any
) -> None:
    record = copy.deepcopy(drifting_runs[0].model_events[0])
    *parents, leaf = path.split("/")
    node = record
    for part in parents:
        node = node[part]
    node[leaf] = value
    assert_invalid("model_event", record)


# -- active learning: label requests, the metrics record's active and curation sections ------


@pytest.fixture(scope="module")
def curated_runs() -> list[ReplayResult]:
    """Replays with label requests (simulated and answered late), label filters and hard
    examples, and a sampled run with Tomek links."""
    raw = list(river_events("agrawal", n=3000, seed=4, interval_ms=10))
    runs = []
    simulated = cfg_with(
        active={"strategy": "uncertainty", "budget": 0.1, "simulate": True},
        curation={"hard_examples": {"size": 20, "p": 0.2}},
        metrics={"report_every": 500},
    )
    runs.append(replay([event_from_object(e) for e in raw], simulated, now_ms=T0))
    stream = late_labels(
        raw, 3, lambda j, _: {"confidence": ((j + 3) % 10) / 10, "annotator": f"a{(j + 3) % 2}"}
    )
    answered = cfg_with(
        active={"strategy": "variable_uncertainty", "budget": 0.2},
        curation={"label_filter": {"min_confidence": 0.2, "contradiction": 0.95, "warmup": 100}},
        labels={"ttl": "1h"},
        metrics={"report_every": 500},
    )
    runs.append(replay(stream, answered, now_ms=T0))
    return runs


def test_label_requests_and_curated_reports_match_their_schemas(
    curated_runs: list[ReplayResult],
) -> None:
    for result in curated_runs:
        assert result.label_requests
        for request in result.label_requests:
            assert_valid("label_request", request)
        for report in result.reports:
            assert_valid("metrics", report)
    final = [r for r in curated_runs[1].reports if r["final"]][-1]
    assert final["curation"]["dropped"]["low_confidence"] > 0
    assert set(final["curation"]["annotators"]) == {"a0", "a1"}
    assert [r for r in curated_runs[0].reports if r["final"]][-1]["curation"]["replayed"] > 0


@pytest.mark.parametrize(
    ("path", "value"),
    [("score", 1.5), ("strategy", "none"), ("proba", {"true": 2.0}), ("model_version", -1)],
)
def test_label_request_schema_rejects_wrong_values(
    curated_runs: list[ReplayResult], path: str, value: Any
) -> None:
    record = copy.deepcopy(curated_runs[0].label_requests[0])
    assert_valid("label_request", record)
    record[path] = value
    assert_invalid("label_request", record)
