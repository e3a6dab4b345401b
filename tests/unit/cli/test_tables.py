"""``stratiflow tail metrics`` tables, on metrics records the job really produces.

The records come from :func:`stratiflow.runner.replay.replay` (and ``keyed.handle``
with a moving wall clock, for the throughput), passed through the job's JSON
encoder as ``tail`` reads them; each test reads numbers back out of the table
and compares them with the record's own values.
"""

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from stratiflow.cli.tables import (
    MAX_CLASSES,
    format_metrics_line,
    format_metrics_report,
    format_record,
    format_tail,
    is_metrics_record,
)
from stratiflow.config import load_config
from stratiflow.io.sources import river_events
from stratiflow.records import Prediction, to_json, to_json_bytes
from stratiflow.runner.replay import ReplayResult, replay
from tests.helpers import FULL_METRICS, T0, clocked, delayed_stream, probe_of

N = 60


def wire(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(to_json(record))


def final(reports: list[dict[str, Any]], key: str = "default") -> dict[str, Any]:
    return wire(next(r for r in reports if r["final"] and r["key"] == key))


@pytest.fixture(scope="module")
def binary_run() -> ReplayResult:
    events = list(river_events("phishing", n=N, start_ts=T0, interval_ms=10))
    cfg = load_config({"metrics": {**FULL_METRICS, "probe": probe_of(events)}})
    return replay(events, cfg, now_ms=T0 + 1)


@pytest.fixture(scope="module")
def binary(binary_run) -> list[dict[str, Any]]:
    return binary_run.reports


@pytest.fixture(scope="module")
def binary_predictions(binary_run) -> list[Prediction]:
    return binary_run.predictions


@pytest.fixture(scope="module")
def multiclass() -> list[dict[str, Any]]:
    cfg = load_config(
        {"model": ["tree.HoeffdingTreeClassifier"], "metrics": {"window": 0, "report_every": 20}}
    )
    return replay(river_events("led", n=N), cfg).reports


@pytest.fixture(scope="module")
def delayed() -> list[dict[str, Any]]:
    stream = delayed_stream()
    cfg = load_config({"labels": {"ttl": "150ms"}, "metrics": FULL_METRICS})
    return replay(stream, cfg, now_ms=T0).reports


def row(table: str, first: str) -> list[str]:
    """The whitespace-separated cells of the table line that starts with ``first``."""
    lines = [line for line in table.splitlines() if line.split()[:1] == [first]]
    assert len(lines) == 1, (first, table)
    return lines[0].split()


def pairs(cells: list[str]) -> dict[str, str]:
    """``name value name value ...`` as a mapping."""
    return dict(zip(cells[::2], cells[1::2], strict=False))


def iso(ms: int) -> str:
    text = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def f3(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def amount(value: float) -> str:
    """Durations: 2 decimals below 10, 1 below 100, none above."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def view_cells(view: dict[str, Any]) -> list[str]:
    n = view["n"]
    return [
        str(n) if isinstance(n, int) else f"{n:.1f}",
        *(
            f3(v)
            for v in (
                view["accuracy"],
                view["balanced_accuracy"],
                view["macro"]["f1"],
                view["weighted"]["f1"],
                view["kappa"],
                view["mcc"],
                view["log_loss"],
                view["roc_auc"],
            )
        ),
    ]


def test_header_and_metric_views(binary):
    record = final(binary)
    assert record["report"] == 13 and record["model_version"] == 60
    table = format_metrics_report(record)
    header = table.splitlines()[0]
    assert header.startswith("key default  report 13 (final)  model v60  ")
    assert f"event_ts {iso(record['event_ts'])}" in header
    assert f"emitted {iso(T0 + 1)}" in header
    columns = ["acc", "bal_acc", "macro_f1", "weighted_f1", "kappa", "mcc", "logloss", "auc"]
    assert row(table, "n") == ["n", *columns]
    for name in ("cumulative", "rolling", "fading"):
        assert row(table, name) == [name, *view_cells(record[name])]
    assert row(table, "rolling")[1] == "10"  # metrics.window
    fading_n = row(table, "fading")[1]
    assert "." in fading_n and 0 < float(fading_n) <= 10  # a sum of weights, one decimal


def test_counts_update_cost_and_trained_on(binary, delayed):
    record = final(binary)
    table = format_metrics_report(record)
    assert pairs(row(table, "counts")[1:]) == {k: str(v) for k, v in record["counts"].items()}
    assert row(table, "update") == ["update", "per_sample", "batches", "0", "fallback", "0"]
    cost = record["cost"]
    predict, learn = cost["predict_us"], cost["learn_us"]
    cells = row(table, "cost")
    assert cells[:3] == ["cost", "predict", "p50/p99"]
    assert cells[3:7] == [amount(predict["p50"]), "/", amount(predict["p99"]), "us"]
    assert cells[7:12] == ["learn", "p50/p99", amount(learn["p50"]), "/", amount(learn["p99"])]
    assert cells[-8:-6] == ["-", "ev/s"]  # replay's wall clock stands still
    model_kb = f"{cost['model_bytes'] / 1e3:.1f}"
    state_kb = f"{cost['state_bytes'] / 1e3:.1f}"
    assert cells[-6:] == ["model", model_kb, "kB", "state", state_kb, "kB"]
    trained = record["trained_on"]
    assert row(table, "trained_on")[1:] == [f"{k}={v}" for k, v in trained.items()]
    assert sum(trained.values()) == record["counts"]["learned"]


def test_delayed_label_numbers(delayed):
    record = final(delayed)
    labels = record["labels"]
    assert labels["joined"] and labels["expired"] and labels["duplicate"] and labels["held"]
    cells = row(format_metrics_report(record), "labels")
    named = pairs(cells[1:19])
    assert named == {k: str(v) for k, v in labels.items() if k != "delay_ms"}
    delay = labels["delay_ms"]
    # p50 near 9 ms (within the sketch's 1%), p99 is the largest delay, 29 ms, exactly.
    assert cells[19:] == ["delay", "p50/p99", f"{delay['p50']:.2f}", "/", "29.0", "ms"]
    assert 8.91 <= delay["p50"] <= 9.09 and delay["p99"] == 29.0


def test_stability_and_probe(binary):
    record = final(binary)
    stability = record["stability"]
    line = " ".join(row(format_metrics_report(record), "stability"))
    spread = stability["spread"]["accuracy"]
    assert f"over {stability['reports']} reports:" in line
    assert f"acc std {spread['std']:.3f} range {spread['range']:.3f}" in line
    macro = stability["spread"]["macro_f1"]
    assert f"macro_f1 std {macro['std']:.3f} range {macro['range']:.3f}" in line
    assert line.endswith(
        f"probe of 3 changed {stability['probe_changed']:.2f}"
        f" (mean {stability['probe_changed_mean']:.2f})"
    )


def test_none_renders_as_a_dash(delayed, multiclass):
    ghost = final(delayed, "ghost")  # a key that only saw a label record
    table = format_metrics_report(ghost)
    assert row(table, "cumulative") == ["cumulative", "0"] + ["-"] * 8
    assert row(table, "rolling") == ["rolling", "0"] + ["-"] * 8
    assert " event_ts -  " in table.splitlines()[0]
    assert row(table, "labels")[-6:] == ["delay", "p50/p99", "-", "/", "-", "ms"]
    assert row(table, "trained_on") == ["trained_on", "-"]
    assert row(table, "per") == ["per", "class", "-"]
    assert "acc std - range -" in " ".join(row(table, "stability"))
    assert row(table, "stability")[-2:] == ["probe", "-"]
    # A view that is off, and a metric without a value (no AUC for a multiclass model).
    multi = format_metrics_report(final(multiclass))
    assert row(multi, "rolling") == ["rolling", "-", "(off:", "metrics.window", "is", "0)"]
    assert row(multi, "fading") == ["fading", "-", "(off:", "metrics.fading", "is", "not", "set)"]
    assert row(multi, "cumulative")[-1] == "-"


def test_multiclass_per_class_lines(multiclass):
    record = final(multiclass)
    per_class = record["cumulative"]["per_class"]
    assert len(per_class) == 10
    table = format_metrics_report(record)
    assert row(table, "class") == ["class", "precision", "recall", "f1", "support"]
    for name, scores in per_class.items():
        assert row(table, name) == [
            name,
            f3(scores["precision"]),
            f3(scores["recall"]),
            f3(scores["f1"]),
            str(scores["support"]),
        ]
    assert row(table, "cumulative")[1] == str(sum(s["support"] for s in per_class.values()))


def test_many_classes_are_cut_short(multiclass):
    record = copy.deepcopy(final(multiclass))
    per_class = record["cumulative"]["per_class"]
    for i in range(10, 30):  # as if the stream had 30 classes
        per_class[str(i)] = per_class["0"]
    lines = format_metrics_report(record).splitlines()
    assert lines[-1] == f"  ... {30 - MAX_CLASSES} more classes"
    assert sum(1 for line in lines if line.startswith("  ") and line.split()[0].isdigit()) == 20


def test_throughput_with_a_moving_clock():
    events = list(river_events("phishing", n=40, start_ts=T0))
    reports = clocked(events, load_config({"metrics": {"report_every": 10}}))
    cells = row(format_metrics_report(wire(reports[1])), "cost")
    assert reports[1]["cost"]["events_per_s"] == 100.0
    assert cells[-8:-6] == ["100", "ev/s"]


def test_tail_prints_a_table_for_metrics_and_a_line_for_the_rest(binary, binary_predictions):
    record = final(binary)
    raw = to_json_bytes(record)
    assert is_metrics_record(json.loads(raw))
    assert format_tail(raw) == format_metrics_report(record) + "\n"
    line = format_record(raw)  # the one-line view (the demo's live output)
    assert line == format_metrics_line(record) and "\n" not in line
    acc = record["cumulative"]["accuracy"]
    assert " FINAL " in line and f"acc={acc:.4f}" in line
    assert f"macroF1={record['cumulative']['macro']['f1']:.4f}" in line
    per_class = record["cumulative"]["per_class"]["true"]
    assert f"true:P={per_class['precision']:.3f}/R={per_class['recall']:.3f}/n=" in line
    prediction = to_json_bytes(binary_predictions[0].to_dict())
    assert format_tail(prediction) == format_record(prediction)
    assert format_tail(prediction).startswith("prediction id=phishing-0 ")
    assert format_tail(b"{not json").startswith("(not JSON)")


def test_older_and_partial_records_still_print(binary):
    """A schema_version 1 record (fields since renamed) prints what it has, dashes elsewhere."""
    v1 = {
        "schema_version": 1,
        "key": "k",
        "report": 2,
        "final": False,
        "counts": {"seen": 5, "scored": 4},
        "cumulative": {"accuracy": 0.75, "macro_f1": 0.5, "log_loss": None, "per_class": {}},
    }
    table = format_metrics_report(v1)
    assert row(table, "cumulative") == ["cumulative", "-", "0.750", "-", "0.500"] + ["-"] * 5
    assert pairs(row(table, "counts")[1:])["seen"] == "5"
    assert "acc=0.7500 macroF1=0.5000 logloss=- kappa=- auc=-" in format_metrics_line(v1)
    # Absent views are left out (null ones say "off").
    assert [line.split()[0] for line in table.splitlines()[1:4]] == ["n", "cumulative", "counts"]
