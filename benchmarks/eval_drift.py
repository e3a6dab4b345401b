"""Evaluate drift detection and adaptation on streams with known drift points.

Run with ``make eval-drift``; writes ``benchmarks/results/drift.json`` and the tables in
``docs/drift.md``. Every job variant runs the job's semantics with
:func:`stratiflow.runner.replay.replay` (the Flink tier shows the job computes the same);
River's own ``drift.DriftRetrainingClassifier``, ``forest.ARFClassifier`` and
``tree.HoeffdingAdaptiveTreeClassifier`` run directly in River on the same events.

Streams: River's SEA, Agrawal, STAGGER, Mixed and Sine generators, the concept switching
between two classification functions at three known points, abruptly (one event to the
next) or gradually (the new concept's share follows a sigmoid over ``--width`` events, as
in River's ``ConceptDriftStream``), over several seeds.

Detection is measured the CapyMOA way: a detection within ``--max-delay`` events after a
true drift is a true positive (the first one; later ones in that window count as false
alarms), a true drift without one is missed, every other detection is a false alarm.
Adaptation is measured by prequential accuracy over the ``--after`` events following each
drift point.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from river import (
    bandit,
    compose,
    drift,
    forest,
    linear_model,
    metrics,
    model_selection,
    naive_bayes,
    preprocessing,
    tree,
)
from river.datasets import synth

from stratiflow.config import load_config
from stratiflow.dashboard.report import board_of_runs, write_board_report
from stratiflow.runner.replay import replay

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "drift.json"
PAGE = ROOT / "docs" / "drift.md"
BEGIN, END = "<!-- eval-drift:begin -->", "<!-- eval-drift:end -->"

#: Generator factories per stream: (seed, concept index 0 or 1) -> River generator.
GENERATORS: dict[str, Callable[[int, int], Any]] = {
    "sea": lambda seed, c: synth.SEA(variant=(0, 3)[c], seed=seed),
    "agrawal": lambda seed, c: synth.Agrawal(classification_function=(0, 2)[c], seed=seed),
    "stagger": lambda seed, c: synth.STAGGER(classification_function=(0, 2)[c], seed=seed),
    "mixed": lambda seed, c: synth.Mixed(classification_function=c, seed=seed),
    "sine": lambda seed, c: synth.Sine(classification_function=(0, 1)[c], seed=seed),
}
MODEL = [{"preprocessing.StandardScaler": {}}, {"linear_model.LogisticRegression": {}}]
TREE = [{"tree.HoeffdingTreeClassifier": {"grace_period": 50}}]
CANDIDATES = [{"name": "tree", "model": TREE}, {"name": "nb", "model": ["naive_bayes.GaussianNB"]}]
#: The job's variants: (name, the config sections beside ``model``).
JOB_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("job: no detector", {}),
    ("job: ADWIN, adaptation none", {"drift": {"detector": "drift.ADWIN"}}),
    ("job: DDM, adaptation none", {"drift": {"detector": "drift.binary.DDM"}}),
    ("job: ADWIN, reset", {"drift": {"detector": "drift.ADWIN", "adaptation": "reset"}}),
    (
        "job: DDM, background",
        {"drift": {"detector": "drift.binary.DDM", "adaptation": "background"}},
    ),
    ("job: ADWIN, background", {"drift": {"detector": "drift.ADWIN", "adaptation": "background"}}),
    ("job: candidates LR + tree + NB", {"candidates": CANDIDATES}),
    (
        "job: candidates LR + tree + NB, DDM background",
        {
            "candidates": CANDIDATES,
            "drift": {"detector": "drift.binary.DDM", "adaptation": "background"},
        },
    ),
]
#: Models run directly in River, prequentially (predict, then learn).
RIVER_MODELS: dict[str, Callable[[int], Any]] = {
    "River DriftRetrainingClassifier (DDM)": lambda seed: drift.DriftRetrainingClassifier(
        model=compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    ),
    # 5 trees instead of 10: ARF is by far the slowest contestant here.
    "River ARFClassifier (5 trees)": lambda seed: forest.ARFClassifier(n_models=5, seed=seed),
    "River HoeffdingAdaptiveTree": lambda seed: tree.HoeffdingAdaptiveTreeClassifier(seed=seed),
    "River BanditClassifier (LR, tree, NB; UCB)": lambda seed: model_selection.BanditClassifier(
        models=[
            compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression()),
            tree.HoeffdingTreeClassifier(grace_period=50),
            naive_bayes.GaussianNB(),
        ],
        metric=metrics.Accuracy(),
        policy=bandit.UCB(delta=1.0, seed=seed),
    ),
}
#: The default detector the goals speak of.
DEFAULT_DETECTOR = "job: ADWIN, adaptation none"


def drifting_events(
    name: str, kind: str, seed: int, n: int, drifts: list[int], width: int
) -> Iterator[dict[str, Any]]:
    """``n`` events whose concept alternates 0, 1, 0, ... at each of ``drifts``."""
    streams = [iter(GENERATORS[name](seed, c)) for c in (0, 1)]
    rng = random.Random(seed)
    for i in range(n):
        before = sum(i >= d for d in drifts) % 2  # concept after the last drift passed
        concept = before
        if kind == "gradual":
            # The nearest drift point decides: the new concept's share is a sigmoid of the
            # distance to it, so each switch is spread over about ``width`` events.
            d = min(drifts, key=lambda p: abs(i - p))
            z = max(-50.0, min(50.0, -4.0 * (i - d) / width))
            share_new = 1.0 / (1.0 + math.exp(z))
            old = sum(j < d for j in drifts) % 2  # concept before that point
            concept = (1 - old) if rng.random() < share_new else old
        x, y = next(streams[concept])
        yield {
            "id": f"{name}-{i}",
            "ts": i * 10,
            "features": {str(k): _plain(v) for k, v in x.items()},
            "label": _plain(y),
        }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def detection_scores(
    detections: list[int], drifts: list[int], n: int, max_delay: int
) -> dict[str, Any]:
    """True positives, false alarms, missed drifts, recall, delay and false alarm rate."""
    matched: set[int] = set()
    delays = []
    for d in drifts:
        hits = [t for t in detections if d <= t < d + max_delay and t not in matched]
        if hits:
            matched.add(hits[0])
            delays.append(hits[0] - d)
    false_alarms = len(detections) - len(matched)
    return {
        "true_positives": len(delays),
        "false_alarms": false_alarms,
        "missed": len(drifts) - len(delays),
        "recall": len(delays) / len(drifts),
        "mean_delay": statistics.fmean(delays) if delays else None,
        "false_alarms_per_1000": 1000 * false_alarms / n,
    }


def accuracy_after(correct: list[bool], drifts: list[int], after: int) -> float:
    """Prequential accuracy over the ``after`` events following each drift point."""
    window = [c for d in drifts for c in correct[d : d + after]]
    return sum(window) / len(window)


def run_job(
    events: list[dict[str, Any]], sections: dict[str, Any]
) -> tuple[list[bool], list[int], float, dict[str, Any]]:
    """Correctness per event, detection points, seconds and the records (for the HTML
    report), for one job variant."""
    cfg = load_config({"model": MODEL, **sections})
    t0 = time.perf_counter()
    result = replay(events, cfg)
    seconds = time.perf_counter() - t0
    correct = [p.y_pred == p.y_true for p in result.predictions]
    index = {e["id"]: i for i, e in enumerate(events)}
    detections = [index[m["id"]] for m in result.model_events if m["type"] == "drift"]
    records = {"metrics": result.reports, "model_events": result.model_events}
    return correct, detections, seconds, records


def run_river(events: list[dict[str, Any]], model: Any) -> tuple[list[bool], float]:
    correct = []
    t0 = time.perf_counter()
    for e in events:
        x, y = e["features"], e["label"]
        correct.append(model.predict_one(x) == y)
        model.learn_one(x, y)
    return correct, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="events per stream")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--streams", nargs="*", default=list(GENERATORS))
    parser.add_argument("--kinds", nargs="*", default=["abrupt", "gradual"])
    parser.add_argument("--width", type=int, default=1000, help="gradual drifts' width")
    parser.add_argument("--max-delay", type=int, default=1000)
    parser.add_argument("--after", type=int, default=2000)
    parser.add_argument("--river", nargs="*", default=list(RIVER_MODELS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/drift.md")
    args = parser.parse_args(argv)
    drifts = [args.n // 4, args.n // 2, 3 * args.n // 4]

    runs: list[dict[str, Any]] = []
    shown: dict[str, dict[str, Any]] = {}  # the first seed's records, for the HTML report
    for name in args.streams:
        for kind in args.kinds:
            for seed in range(1, args.seeds + 1):
                events = list(drifting_events(name, kind, seed, args.n, drifts, args.width))
                base = {"stream": name, "kind": kind, "seed": seed}
                for variant, sections in JOB_VARIANTS:
                    correct, detections, seconds, records = run_job(events, sections)
                    if seed == 1:
                        shown[f"{name} {kind}: {variant}"] = records
                    row = {**base, "model": variant, "seconds": round(seconds, 2)}
                    row["accuracy_after_drift"] = accuracy_after(correct, drifts, args.after)
                    row["accuracy"] = sum(correct) / len(correct)
                    if "drift" in sections:
                        row["detections"] = detections
                        row |= detection_scores(detections, drifts, args.n, args.max_delay)
                    runs.append(row)
                for variant in args.river:
                    correct, seconds = run_river(events, RIVER_MODELS[variant](seed))
                    runs.append(
                        {
                            **base,
                            "model": variant,
                            "seconds": round(seconds, 2),
                            "accuracy_after_drift": accuracy_after(correct, drifts, args.after),
                            "accuracy": sum(correct) / len(correct),
                        }
                    )
                print(f"{name} {kind} seed {seed}: done", flush=True)

    setup = {
        "n": args.n,
        "drifts": drifts,
        "seeds": args.seeds,
        "width": args.width,
        "max_delay": args.max_delay,
        "after": args.after,
        "model": "StandardScaler | LogisticRegression",
    }
    summary = summarise(runs, args.kinds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setup": setup, "summary": summary, "runs": runs}, indent=1))
    report = write_board_report(
        board_of_runs(shown),
        args.out.with_suffix(".html"),
        f"eval-drift: drifts at {drifts}, seed 1 (one key per stream and variant)",
    )
    print(f"wrote {report.html} ({len(shown)} runs)")
    tables = format_tables(setup, summary)
    print(tables)
    if not args.no_docs:
        write_docs(tables)
    return 0


def summarise(runs: list[dict[str, Any]], kinds: list[str]) -> dict[str, Any]:
    """Per kind and model: detection totals and mean accuracy after the drifts."""
    out: dict[str, Any] = {}
    for kind in kinds:
        rows = [r for r in runs if r["kind"] == kind]
        models = list(dict.fromkeys(r["model"] for r in rows))
        per_model = {}
        for model in models:
            mine = [r for r in rows if r["model"] == model]
            entry: dict[str, Any] = {
                "accuracy_after_drift": statistics.fmean(r["accuracy_after_drift"] for r in mine),
                "accuracy": statistics.fmean(r["accuracy"] for r in mine),
                "seconds": sum(r["seconds"] for r in mine),
            }
            if "recall" in mine[0]:
                tp = sum(r["true_positives"] for r in mine)
                drifts = tp + sum(r["missed"] for r in mine)
                delays = [r["mean_delay"] for r in mine if r["mean_delay"] is not None]
                entry |= {
                    "recall": tp / drifts,
                    "mean_delay": statistics.fmean(delays) if delays else None,
                    "false_alarms": sum(r["false_alarms"] for r in mine),
                    "false_alarms_per_10000": statistics.fmean(
                        r["false_alarms_per_1000"] * 10 for r in mine
                    ),
                    "runs": len(mine),
                }
            per_model[model] = entry
        streams = list(dict.fromkeys(r["stream"] for r in rows))
        per_stream = {
            s: {
                m: statistics.fmean(
                    r["accuracy_after_drift"] for r in rows if r["stream"] == s and r["model"] == m
                )
                for m in models
            }
            for s in streams
        }
        out[kind] = {"models": per_model, "streams": per_stream}
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_tables(setup: dict[str, Any], summary: dict[str, Any]) -> str:
    lines = [
        f"{setup['n']} events per stream, drifts at {setup['drifts']}, {setup['seeds']} seeds; "
        f"model {setup['model']}; true positive = first detection within {setup['max_delay']} "
        f"events; accuracy over the {setup['after']} events after each drift.",
        "",
    ]
    for kind, part in summary.items():
        lines += [
            f"**{kind} drifts**",
            "",
            "| model | recall | mean delay | false alarms / 10k | accuracy after drift | "
            "accuracy | seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        for model, e in part["models"].items():
            lines.append(
                f"| {model} | {_fmt(e.get('recall'))} | {_fmt(e.get('mean_delay'), 0)} | "
                f"{_fmt(e.get('false_alarms_per_10000'), 2)} | "
                f"{_fmt(e['accuracy_after_drift'])} | {_fmt(e['accuracy'])} | "
                f"{_fmt(e['seconds'], 1)} |"
            )
        streams = part["streams"]
        models = list(next(iter(streams.values())))
        lines += [
            "",
            f"Accuracy after the {kind} drifts, per stream:",
            "",
            "| stream | " + " | ".join(models) + " |",
            "|---|" + "---|" * len(models),
        ]
        for stream, accs in streams.items():
            lines.append(f"| {stream} | " + " | ".join(_fmt(accs[m]) for m in models) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_docs(tables: str) -> None:
    text = PAGE.read_text()
    if BEGIN not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(f"{head}{BEGIN}\n{tables}{END}{tail}")


if __name__ == "__main__":
    raise SystemExit(main())
