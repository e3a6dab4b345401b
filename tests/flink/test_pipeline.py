"""The job graph on a MiniCluster with bounded file sources (backtest runner)."""

import json
from collections import Counter

import pytest

from stratiflow.config import load_config
from stratiflow.jobs.backtest import run_backtest
from tests.helpers import (
    assert_matches_river,
    phishing_accuracy,
    phishing_events,
    read_jsonl,
    river_progressive_accuracy,
    river_reference,
)

pytestmark = pytest.mark.flink

BAD_LINES = [
    b"not json at all",
    b'{"id": "n", "ts": 1, "features": {"x": NaN}, "label": true}',
    b'{"id": "s", "ts": 1, "features": {"x": 1.0}, "label": "phishing"}',
    b'{"id": "m", "features": {"x": 1.0}}',
    b"\xff\xfe\x00 binary",
    b'{"id": "t", "ts": 1, "features": {"x": "text"}, "label": true}',
]


def write_events(path, events, bad=(), every=200):
    """JSONL with ``bad`` lines spliced in; returns {line number: bad line}."""
    bad_at = {}
    with path.open("wb") as handle:
        line = 0
        bad_iter = iter(bad)
        for i, event in enumerate(events):
            if i % every == every // 2:
                item = next(bad_iter, None)
                if item is not None:
                    handle.write(item + b"\n")
                    bad_at[line] = item
                    line += 1
            handle.write(json.dumps(event).encode() + b"\n")
            line += 1
    return bad_at


@pytest.fixture(scope="module")
def phishing_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("phishing")
    events = phishing_events()
    bad_at = write_events(tmp / "events.jsonl", events, BAD_LINES)
    cfg = load_config({"metrics": {"report_every": 500}})
    result = run_backtest(tmp / "events.jsonl", cfg, tmp / "out")
    return events, bad_at, result


def test_predictions_equal_river_and_accuracy_is_exact(phishing_run):
    events, _, result = phishing_run
    predictions = read_jsonl(result.out_dir / "predictions.jsonl")
    assert len(predictions) == len(events) == 1250
    assert assert_matches_river(predictions, river_reference(events)) == 1250
    metrics = read_jsonl(result.out_dir / "metrics.jsonl")
    final = [m for m in metrics if m["final"]]
    assert len(final) == 1
    assert final[0]["cumulative"]["accuracy"] == phishing_accuracy()
    assert [m["counts"]["scored"] for m in metrics if not m["final"]] == [500, 1000]


def test_bad_records_are_dead_lettered_with_their_source(phishing_run):
    events, bad_at, result = phishing_run
    letters = read_jsonl(result.out_dir / "dead_letters.jsonl")
    assert result.events == len(events) + len(BAD_LINES)
    assert result.predictions + result.dead_letters == result.events  # nothing lost
    by_offset = {d["offset"]: d for d in letters}
    assert set(by_offset) == set(bad_at)
    reasons = Counter(d["reason"] for d in letters)
    assert reasons == {
        "invalid_json": 1,
        "non_finite_number": 1,
        "label_not_supported": 1,
        "missing_field": 1,
        "not_utf8": 1,
        "model_rejected_input": 1,
    }
    for offset, letter in by_offset.items():
        assert letter["topic"].endswith("events.jsonl") and letter["partition"] == 0
        if letter["raw_encoding"] == "utf-8" and letter["reason"] != "model_rejected_input":
            assert letter["raw"].encode() == bad_at[offset]
    binary = next(d for d in letters if d["reason"] == "not_utf8")
    import base64

    assert base64.b64decode(binary["raw"]) == bad_at[binary["offset"]]


def test_two_keys_at_parallelism_two_match_river_per_key(tmp_path):
    events = phishing_events(keys=("alpha", "beta"))
    write_events(tmp_path / "events.jsonl", events)
    cfg = load_config({"job": {"parallelism": 2}, "metrics": {"report_every": 100}})
    result = run_backtest(tmp_path / "events.jsonl", cfg, tmp_path / "out")
    predictions = read_jsonl(result.out_dir / "predictions.jsonl")
    assert assert_matches_river(predictions, river_reference(events)) == 1250
    finals = {m["key"]: m for m in read_jsonl(result.out_dir / "metrics.jsonl") if m["final"]}
    assert set(finals) == {"alpha", "beta"}
    for key, report in finals.items():
        own = [e for e in events if e["key"] == key]
        assert report["counts"]["seen"] == len(own) == 625
        assert report["cumulative"]["accuracy"] == river_progressive_accuracy(own)


def test_unlabelled_events_are_predicted_but_not_learned(tmp_path):
    events = phishing_events()[:300]
    for e in events[1::3]:
        e["label"] = None
    write_events(tmp_path / "events.jsonl", events)
    result = run_backtest(tmp_path / "events.jsonl", load_config(None), tmp_path / "out")
    predictions = read_jsonl(result.out_dir / "predictions.jsonl")
    assert len(predictions) == 300
    assert assert_matches_river(predictions, river_reference(events)) == 300
    final = read_jsonl(result.out_dir / "metrics.jsonl")[-1]
    assert final["final"] and final["counts"]["unlabelled"] == 100
    assert final["counts"]["learned"] == 200 and final["model_version"] == 200


@pytest.mark.parametrize("batch_size", [1, 7])
def test_input_batching_does_not_change_results(tmp_path, batch_size):
    """Records cross into Python one at a time (1) or in per-key batches cut mid-stream
    (7, interleaved keys): the same predictions, dead letters and counts either way."""
    events = phishing_events(keys=("alpha", "beta"))[:400]
    bad_at = write_events(tmp_path / "events.jsonl", events, BAD_LINES, every=60)
    cfg = load_config({"job": {"input_batch_size": batch_size}})
    result = run_backtest(tmp_path / "events.jsonl", cfg, tmp_path / "out")
    predictions = read_jsonl(result.out_dir / "predictions.jsonl")
    assert assert_matches_river(predictions, river_reference(events)) == 400
    letters = read_jsonl(result.out_dir / "dead_letters.jsonl")
    assert {d["offset"] for d in letters} == set(bad_at)
    assert result.predictions + result.dead_letters == result.events == 400 + len(bad_at)
    finals = {m["key"]: m for m in read_jsonl(result.out_dir / "metrics.jsonl") if m["final"]}
    # The keyless record the model rejects (a text feature) is seen by key "default".
    seen = {key: m["counts"]["seen"] for key, m in finals.items()}
    assert seen == {"alpha": 200, "beta": 200, "default": 1}


@pytest.mark.parametrize("batch_size", [1, 4])
def test_in_memory_records_with_no_value_are_dead_lettered_with_raw_null(batch_size):
    """A bounded in-memory source's record with no value crosses Flink (tuple fields cannot
    be null) and its dead letter has raw null; a zero-byte value's has raw ""."""
    from pyflink.common import Types

    from stratiflow.jobs.runtime import create_env
    from stratiflow.jobs.train_predict import build_pipeline
    from stratiflow.operators.raw import KEYED_RAW_RECORD, raw_row

    events = phishing_events()[:12]
    values = [json.dumps(e).encode() for e in events]
    values[3:3] = [None, b""]  # offsets 3 and 4
    cfg = load_config({"job": {"input_batch_size": batch_size}})
    env = create_env(cfg, embedded=True)
    rows = [raw_row("mem", 0, offset, value) for offset, value in enumerate(values)]
    raw = env.from_collection(rows, type_info=KEYED_RAW_RECORD)
    outputs = build_pipeline(raw, cfg, parse_parallelism=1)
    tagged = outputs.predictions.map(lambda s: "p" + s, output_type=Types.STRING()).union(
        outputs.dead_letters.map(lambda s: "d" + s, output_type=Types.STRING())
    )
    with tagged.execute_and_collect() as results:
        out = list(results)
    letters = [json.loads(item[1:]) for item in out if item[0] == "d"]
    assert sum(item[0] == "p" for item in out) == len(events)
    assert {d["offset"]: (d["reason"], d["raw"], d["raw_encoding"]) for d in letters} == {
        3: ("empty_payload", None, "none"),
        4: ("empty_payload", "", "utf-8"),
    }


@pytest.mark.parametrize("strategy", ["none", "balanced"])
def test_every_keyed_python_operator_checkpoints_its_last_bundles_timers(strategy):
    """PyFlink 2.3's keyed operator leaves a checkpoint without the timers of its last
    bundle; the job's keyed operators are stratiflow's subclass, which drains them first
    (tests/e2e/test_chaos.py restores a sampled job from a savepoint)."""
    from stratiflow.jobs.runtime import create_env
    from stratiflow.jobs.train_predict import build_pipeline
    from stratiflow.operators.raw import KEYED_RAW_RECORD, raw_row

    sampling = {"strategy": strategy, **({"budget": 100} if strategy != "none" else {})}
    cfg = load_config({"sampling": sampling})
    env = create_env(cfg, embedded=True)
    rows = [raw_row("mem", 0, 0, json.dumps(phishing_events()[0]).encode())]
    outputs = build_pipeline(env.from_collection(rows, type_info=KEYED_RAW_RECORD), cfg)
    outputs.predictions.print()
    graph = env._j_stream_execution_environment.getStreamGraph(False)
    operators = []
    for node in graph.getStreamNodes().toArray():
        factory = node.getOperatorFactory()
        if factory is not None and "SimpleOperatorFactory" in factory.getClass().getName():
            operators.append(factory.getOperator().getClass().getName())
    keyed = [name for name in operators if name.endswith("KeyedProcessOperator")]
    assert keyed, operators
    assert set(keyed) == {"io.stratiflow.flink.ExternalPythonKeyedProcessOperator"}
