"""The JSON Schemas in ``schemas/`` against records the code really produces.

Every record validated here comes out of stratiflow itself (``river_events``,
``step``, ``metrics_report``, ``parse_event`` + ``DeadLetter``, ``replay``'s
sampling stats), encoded the way
the job writes it to Kafka (``to_json``), so a field added or changed in the
code without a schema update fails this test, and so does a schema change the
code does not follow.
"""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from stratiflow.config import ModelStep, load_config
from stratiflow.learner import ModelState, build_model, label_policy, metrics_report, step
from stratiflow.records import DeadLetter, Event, Rejection, SourceRef, to_json
from stratiflow.replay import replay
from stratiflow.sources import river_events
from stratiflow.validate import REASONS, LabelPolicy, Limits, event_from_object, parse_event

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
NAMES = ("event", "prediction", "metrics", "dead_letter", "sampling_stats")
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


def run(steps, events, report_every=10):
    """Run ``step`` like the model operator does; return its predictions and reports."""
    state = ModelState.new(build_model(steps))
    predictions, reports = [], [metrics_report(state, "default", now_ms=0)]  # empty state
    for i, e in enumerate(events):
        event = Event(e["id"], e["ts"], e["features"], e["label"], e["key"])
        out = step(state, event, now_ms=1_700_000_000_000 + i, report_every=report_every)
        assert out.prediction is not None, out.rejection
        predictions.append(out.prediction.to_dict())
        if out.report_due:
            reports.append(metrics_report(state, event.key, now_ms=i))
    reports.append(metrics_report(state, "default", now_ms=N, final=True))
    return predictions, reports


@pytest.fixture(scope="module")
def binary_run():
    events = list(river_events("phishing", n=N, unlabelled_fraction=0.2))
    return run(load_config(None).model, events)


@pytest.fixture(scope="module")
def multiclass_run():
    return run([ModelStep("tree.HoeffdingTreeClassifier")], list(river_events("led", n=N)))


@pytest.fixture(scope="module")
def tree_binary_run():
    # A tree has no answer for the first event: y_pred null, proba empty.
    return run([ModelStep("tree.HoeffdingTreeClassifier")], list(river_events("phishing", n=N)))


RUNS = ("binary_run", "multiclass_run", "tree_binary_run")


@pytest.mark.parametrize("fixture", RUNS)
def test_real_predictions_match_the_prediction_schema(fixture, request):
    predictions, _ = request.getfixturevalue(fixture)
    assert len(predictions) == N
    for p in predictions:
        assert_valid("prediction", p)


def test_the_runs_cover_every_prediction_shape(binary_run, multiclass_run, tree_binary_run):
    binary, multiclass, tree = binary_run[0], multiclass_run[0], tree_binary_run[0]
    assert any("y_true" not in p for p in binary)  # unlabelled
    assert {type(p["y_pred"]) for p in binary} == {bool}
    assert set(binary[-1]["proba"]) == {"true", "false"}
    assert tree[0]["y_pred"] is None and tree[0]["proba"] == {}
    assert any(isinstance(p["y_pred"], int) and len(p["proba"]) > 2 for p in multiclass)


@pytest.mark.parametrize("fixture", RUNS)
def test_real_metrics_reports_match_the_metrics_schema(fixture, request):
    _, reports = request.getfixturevalue(fixture)
    assert len(reports) >= 3 and reports[-1]["final"] is True
    for r in reports:
        assert_valid("metrics", r)


def test_the_reports_cover_nulls_and_multiclass(binary_run, multiclass_run):
    empty, last = binary_run[1][0], multiclass_run[1][-1]
    assert empty["event_ts"] is None and empty["cumulative"]["log_loss"] is None
    assert empty["timing_us"]["predict"] == {"mean": None, "max": None}
    assert last["cumulative"]["log_loss"] is not None and len(last["cumulative"]["per_class"]) > 2


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
    for rejection in (too_large, binary, too_many):
        assert isinstance(rejection, Rejection)
        letters.append(DeadLetter.of(rejection, GOOD_RAW, SourceRef("events", 0, 7), at=1))
    # The model raises on a feature it cannot use (operators/model.py).
    pipeline = build_model(load_config(None).model)
    assert label_policy(pipeline).binary
    state = ModelState.new(pipeline)
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
    overflow = ModelState.new(build_model(load_config(None).model))
    for i, x in enumerate([1.0, 2.0, 1e308, -1e308, 1e308]):
        extreme = Event(f"o{i}", 5, {"x": x}, label=i % 2 == 0, key="k")
        out = step(overflow, extreme, now_ms=9)
        if out.rejection is not None:
            raw = to_json(extreme.to_dict()).encode()
            letters.append(DeadLetter.of(out.rejection, raw, None, at=9, key="k"))
    # A validator bug (operators/parse.py catches it as invalid_event).
    crash = Rejection("invalid_event", "validation failed: RuntimeError: boom")
    letters.append(DeadLetter.of(crash, b"\x00\x9f", SourceRef("events", 0, 0), at=2))
    return [letter.to_dict() for letter in letters]


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
    prediction = wire(binary_run[0][-1])
    prediction.setdefault("y_true", True)
    assert_valid("prediction", prediction)
    assert_invalid("prediction", mutated(prediction, path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("schema_version", 2),
        ("schema_version", DELETE),
        ("final", "yes"),
        ("report", 0),
        ("unexpected", 1),
        ("counts/seen", DELETE),
        ("counts/seen", -1),
        ("counts/seen", 1.5),
        ("counts/unexpected", 1),
        ("cumulative/accuracy", 1.5),
        ("cumulative/accuracy", None),
        ("cumulative/log_loss", DELETE),
        ("cumulative/log_loss", "0.3"),
        ("cumulative/per_class", []),
        ("timing_us/predict/mean", "fast"),
        ("timing_us/learn", DELETE),
    ],
)
def test_metrics_schema_rejects(multiclass_run, path, value):
    report = wire(multiclass_run[1][-1])
    assert_valid("metrics", report)
    assert_invalid("metrics", mutated(report, path, value))


def test_metrics_schema_allows_new_cumulative_metrics(multiclass_run):
    report = wire(multiclass_run[1][-1])
    report["cumulative"]["cohen_kappa"] = 0.5
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
            "phishing", n=300, interval_ms=10, keys=("a", "b"), unlabelled_fraction=0.1, seed=2
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
