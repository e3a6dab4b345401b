"""Plain-text views of metrics records, for ``stratiflow tail metrics`` and the demo.

:func:`format_metrics_report` turns one metrics record (``schema_version`` 2,
one model key) into a compact table: the three metric views side by side, then
counts, delayed labels, stability, update policy, cost and per-class scores.
:func:`format_metrics_line` is the one-line summary. Both take the record as it
was decoded from JSON; a missing or ``null`` value shows as ``-``, so older or
partial records still print.

>>> from stratiflow.config import load_config
>>> from stratiflow.learning.learner import ModelState
>>> from stratiflow.runner.report import metrics_report
>>> empty = metrics_report(ModelState.new(load_config()), "default", now_ms=0)
>>> print(format_metrics_report(empty).splitlines()[0])
key default  report 1  model v0  event_ts -  emitted 1970-01-01T00:00:00.000Z
>>> format_metrics_line(empty).split()[-4:]
['logloss=-', 'kappa=-', 'auc=-', 'rolling_acc=-']
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from stratiflow.records import MODEL_EVENT_TYPES

#: Metric columns of the views table: (header, path in a metric set).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("acc", "accuracy"),
    ("bal_acc", "balanced_accuracy"),
    ("macro_f1", "macro.f1"),
    ("weighted_f1", "weighted.f1"),
    ("kappa", "kappa"),
    ("mcc", "mcc"),
    ("logloss", "log_loss"),
    ("auc", "roc_auc"),
)
#: Views of the record, in the order printed.
VIEWS = ("cumulative", "rolling", "fading")
#: Why a view is null.
OFF = {"rolling": "metrics.window is 0", "fading": "metrics.fading is not set"}
#: Per-class rows printed at most (the rest are summarised in one line).
MAX_CLASSES = 20
#: The labels counters, in the order printed.
LABEL_COUNTS = (
    "received",
    "joined",
    "waiting",
    "never_came",
    "held",
    "unknown",
    "duplicate",
    "expired",
    "event_rejected",
)
COUNTS = (
    "seen",
    "predicted",
    "labelled",
    "unlabelled",
    "scored",
    "learned",
    "rejected",
    "learn_failed",
    "late",
    "buffered",
)
SPREAD = (("acc", "accuracy"), ("bal_acc", "balanced_accuracy"), ("macro_f1", "macro_f1"))
DASH = "-"


def get(record: Any, path: str) -> Any:
    """``record["a"]["b"]`` for ``"a.b"``; ``None`` when any step is missing or null."""
    for name in path.split("."):
        if not isinstance(record, Mapping):
            return None
        record = record.get(name)
    return record


def number(value: Any, digits: int = 3) -> str:
    """A metric: fixed ``digits`` decimals, ``-`` for null."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DASH
    return f"{value:.{digits}f}"


def count(value: Any) -> str:
    """A count: an integer as is, a weight (fading) with one decimal, ``-`` for null."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DASH
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def amount(value: Any) -> str:
    """A duration or rate, with as many decimals as its size deserves."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DASH
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if size >= 10 else f"{value:.2f}"


def size(value: Any) -> str:
    """Bytes, in B, kB or MB (powers of 1000)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DASH
    if value < 1_000:
        return f"{value} B"
    if value < 1_000_000:
        return f"{value / 1e3:.1f} kB"
    return f"{value / 1e6:.1f} MB"


def timestamp(ms: Any) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC with milliseconds."""
    if isinstance(ms, bool) or not isinstance(ms, int):
        return DASH
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def quantiles(summary: Any, unit: str) -> str:
    """``p50/p99 a / b unit`` of a quantile summary."""
    return f"p50/p99 {amount(get(summary, 'p50'))} / {amount(get(summary, 'p99'))} {unit}"


def align(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows of cells as left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    return [
        indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in rows
    ]


def _macro_f1(view: Any) -> Any:
    # schema_version 1 records had cumulative.macro_f1; 2 has cumulative.macro.f1.
    value = get(view, "macro.f1")
    return value if value is not None else get(view, "macro_f1")


def _metric(view: Any, path: str) -> Any:
    if path == "macro.f1":
        return _macro_f1(view)
    if path == "weighted.f1":
        value = get(view, path)
        return value if value is not None else get(view, "weighted_f1")
    return get(view, path)


def _header(record: Mapping[str, Any]) -> str:
    report = f"report {count(record.get('report'))}"
    if record.get("final"):
        report += " (final)"
    return "  ".join(
        [
            f"key {record.get('key', DASH)}",
            report,
            f"model v{count(record.get('model_version'))}",
            f"event_ts {timestamp(record.get('event_ts'))}",
            f"emitted {timestamp(record.get('emitted_at'))}",
        ]
    )


def _views(record: Mapping[str, Any]) -> list[str]:
    rows = [["", "n", *(header for header, _ in COLUMNS)]]
    for name in VIEWS:
        if name not in record:
            continue
        view = record[name]
        if view is None:
            rows.append([name, DASH, f"(off: {OFF[name]})"])
            continue
        rows.append([name, count(get(view, "n")), *(number(_metric(view, p)) for _, p in COLUMNS)])
    return align(rows)


def _counts(record: Mapping[str, Any]) -> str:
    counts = record.get("counts")
    return "counts     " + "  ".join(f"{name} {count(get(counts, name))}" for name in COUNTS)


def _labels(record: Mapping[str, Any]) -> str:
    labels = record.get("labels")
    parts = [f"{name} {count(get(labels, name))}" for name in LABEL_COUNTS]
    delay = quantiles(get(labels, "delay_ms"), "ms")
    return "labels     " + "  ".join(parts) + f"  delay {delay}"


def _stability(record: Mapping[str, Any]) -> str:
    stability = record.get("stability")
    reports = count(get(stability, "reports"))
    spreads = "  ".join(
        f"{short} std {number(get(stability, f'spread.{name}.std'))}"
        f" range {number(get(stability, f'spread.{name}.range'))}"
        for short, name in SPREAD
    )
    probe_size = get(stability, "probe_size")
    if probe_size:
        probe = (
            f"probe of {probe_size} changed {number(get(stability, 'probe_changed'), 2)}"
            f" (mean {number(get(stability, 'probe_changed_mean'), 2)})"
        )
    else:
        probe = "probe -"
    return f"stability  rolling over {reports} reports: {spreads}  {probe}"


def _update(record: Mapping[str, Any]) -> str:
    update = record.get("update")
    return (
        f"update     {get(update, 'mode') or DASH}  batches {count(get(update, 'batches'))}"
        f"  fallback {count(get(update, 'fallback_batches'))}"
    )


def _cost(record: Mapping[str, Any]) -> str:
    cost = record.get("cost")
    return (
        f"cost       predict {quantiles(get(cost, 'predict_us'), 'us')}"
        f"  learn {quantiles(get(cost, 'learn_us'), 'us')}"
        f"  {amount(get(cost, 'events_per_s'))} ev/s"
        f"  model {size(get(cost, 'model_bytes'))}"
        f"  state {size(get(cost, 'state_bytes'))}"
    )


def _trained_on(record: Mapping[str, Any]) -> str:
    trained = record.get("trained_on")
    mix = "  ".join(f"{k}={count(v)}" for k, v in trained.items()) if trained else DASH
    return f"trained_on {mix}"


def _per_class(record: Mapping[str, Any]) -> list[str]:
    per_class = get(record, "cumulative.per_class")
    if not isinstance(per_class, Mapping) or not per_class:
        return ["per class  -"]
    rows = [["class", "precision", "recall", "f1", "support"]]
    for name, scores in list(per_class.items())[:MAX_CLASSES]:
        rows.append(
            [
                str(name),
                number(get(scores, "precision")),
                number(get(scores, "recall")),
                number(get(scores, "f1")),
                count(get(scores, "support")),
            ]
        )
    lines = ["per class (cumulative)", *align(rows, indent="  ")]
    if len(per_class) > MAX_CLASSES:
        lines.append(f"  ... {len(per_class) - MAX_CLASSES} more classes")
    return lines


def format_metrics_report(record: Mapping[str, Any]) -> str:
    """A metrics record as a small readable table (several lines, no trailing newline)."""
    return "\n".join(
        [
            _header(record),
            *_views(record),
            _counts(record),
            _labels(record),
            _stability(record),
            _update(record),
            _cost(record),
            _trained_on(record),
            *_per_class(record),
        ]
    )


def format_metrics_line(record: Mapping[str, Any]) -> str:
    """A metrics record in one line: key, report, counts and the main cumulative metrics."""
    m = record.get("cumulative")
    per_class = get(m, "per_class")
    classes = "".join(
        f"  {k}:P={number(get(v, 'precision'))}/R={number(get(v, 'recall'))}"
        f"/n={count(get(v, 'support'))}"
        for k, v in (per_class.items() if isinstance(per_class, Mapping) else ())
    )
    return (
        f"metrics key={record.get('key', DASH):<10} report={count(record.get('report')):<4}"
        f"{' FINAL' if record.get('final') else ''}"
        f" seen={count(get(record, 'counts.seen')):<7}"
        f" scored={count(get(record, 'counts.scored')):<7}"
        f" acc={number(get(m, 'accuracy'), 4):<6} macroF1={number(_macro_f1(m), 4):<6}"
        f" logloss={number(get(m, 'log_loss'), 4)}"
        f" kappa={number(get(m, 'kappa'), 3)} auc={number(get(m, 'roc_auc'), 3)}"
        f" rolling_acc={number(get(record.get('rolling'), 'accuracy'), 4)}{classes}"
    )


def is_metrics_record(obj: Any) -> bool:
    """Whether a decoded JSON value looks like a metrics record."""
    return isinstance(obj, Mapping) and "schema_version" in obj and "counts" in obj


def format_record(value: bytes) -> str:
    """A one-line human view of a prediction, metrics report or dead letter."""
    try:
        obj = json.loads(value)
    except ValueError:
        return f"(not JSON) {value[:120]!r}"
    if not isinstance(obj, dict):
        return json.dumps(obj)
    if is_metrics_record(obj):
        return format_metrics_line(obj)
    if "reason" in obj and "raw" in obj:
        raw = obj.get("raw") or ""
        return (
            f"dead-letter {obj['reason']:<22} {obj.get('topic')}/{obj.get('partition')}"
            f"@{obj.get('offset')}  {obj.get('detail')}  raw={raw[:60]!r}"
        )
    if obj.get("type") in MODEL_EVENT_TYPES and "generation" in obj:
        return format_model_event(obj)
    if "requested_at" in obj and "strategy" in obj:
        best = max(obj.get("proba", {}).values(), default=None)
        top = "-" if best is None else f"{best:.3f}"
        simulated = " (simulated)" if obj.get("simulated") else ""
        return (
            f"label-request id={obj['id']:<16} key={obj['key']:<10} {obj['strategy']}"
            f" score={obj['score']:.3f} p_max={top} v={obj.get('model_version')}{simulated}"
        )
    if "y_pred" in obj and "proba" in obj:
        best = max(obj["proba"].values(), default=0.0)
        truth = ""
        if "y_true" in obj:
            verdict = "ok" if obj["y_true"] == obj["y_pred"] else "MISS"
            truth = f" y_true={json.dumps(obj['y_true'])} {verdict}"
        return (
            f"prediction id={obj['id']:<16} key={obj['key']:<10} y_pred={json.dumps(obj['y_pred'])}"
            f" p={best:.3f} v={obj['model_version']} g={obj.get('generation', 0)}{truth}"
        )
    return json.dumps(obj)


def format_model_event(obj: dict[str, Any]) -> str:
    """One line for a model-events record: what happened, where, and what changed.

    Parameters
    ----------
    obj
        A decoded model-events record.

    Returns
    -------
    str
        e.g. ``drift            key=default  at id=e-4479 (scored 4480) ...``.

    Examples
    --------
    >>> line = format_model_event({"type": "model_reset", "key": "eu", "id": "e-9", "scored": 10,
    ...     "detector": "drift.ADWIN", "metric": {"before": 0.5, "after": None},
    ...     "model_version": {"before": 9, "after": 0}, "generation": {"before": 0, "after": 1}})
    >>> line.startswith("model_reset ") and "at id=e-9 (scored 10)" in line
    True
    >>> line.endswith("accuracy 0.500 -> -  generation 0 -> 1, model_version 9 -> 0")
    True
    """

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    metric, version, generation = obj["metric"], obj["model_version"], obj["generation"]
    line = (
        f"{obj['type']:<16} key={obj['key']:<10} at id={obj['id']} (scored {obj['scored']})  "
        f"{obj.get('detector') or ''}  {metric.get('name', 'accuracy')} "
        f"{rate(metric['before'])} -> {rate(metric['after'])}"
    )
    if "model" in obj:
        line += f"  model {obj['model']['before']} -> {obj['model']['after']}"
    if generation["before"] != generation["after"]:
        line += (
            f"  generation {generation['before']} -> {generation['after']}, "
            f"model_version {version['before']} -> {version['after']}"
        )
    return line


def format_tail(value: bytes) -> str:
    """What ``tail`` prints for a record: a table per metrics report (followed by a blank
    line), one line for anything else.

    >>> format_tail(b'{"y_pred": true, "proba": 3}')  # not a prediction after all
    '{"y_pred": true, "proba": 3}'
    """
    try:
        obj = json.loads(value)
    except ValueError:
        obj = None
    try:
        if is_metrics_record(obj):
            return format_metrics_report(obj) + "\n"
        return format_record(value)
    except (KeyError, TypeError, AttributeError, ValueError):
        # A record that looks like one of ours but is not (any topic can be tailed):
        # shown as it is rather than stopping the tail.
        return value.decode("utf-8", "replace")
