"""Evaluate active learning and the label filter on River streams.

Run with ``make eval-curation``; writes ``benchmarks/results/curation.json`` and the tables in
``docs/curation.md``. Every variant runs the job's semantics, with the default model
(``StandardScaler | LogisticRegression``), on the same events over several seeds.

Active learning (``active.simulate: true``): every event carries its label and every
prediction is scored against it (prequential accuracy over all events), but the model learns
a label only when the strategy asked for it, within the hard budget. Variants: ``random``,
``uncertainty`` and ``variable_uncertainty`` at each ``--budgets`` share, and full labelling
(no ``active`` section); they run with :func:`stratiflow.runner.replay.replay`. Label share
used = labels learned / labelled events, from the final metrics report. On the drifting
streams (River's ``ConceptDriftStream``, one abrupt switch at event 5000) the accuracy over
the last quarter of the stream and the requests made after the drift point are reported too.

Label noise: ``--noise`` of the labels (seeded; a binary label is flipped, a multi-class one
replaced by another class drawn uniformly) are wrong in the events the job is fed; the job's
predictions are scored against the clean labels here. Variants: clean labels, noisy labels,
and noisy labels with the contradiction filter (``curation.label_filter.contradiction`` at
each ``--filters`` bound, ``warmup`` ``--warmup``). These runs drive
:func:`stratiflow.learning.step` (the function the Flink model operator and ``replay`` call)
event by event, reading the key's ``curation.dropped`` count around each step to know which
labels the filter dropped: that gives the precision and recall of the drops against the
flipped labels. The first such run is checked against ``replay`` (same predictions, same
counts).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from stratiflow.config import DEFAULT_MODEL, Config, load_config
from stratiflow.dashboard.report import board_of_runs, write_board_report
from stratiflow.io.sources import DRIFT_POSITION, dataset_names, river_events
from stratiflow.learning import ModelState, step
from stratiflow.records import Event
from stratiflow.runner.keyed import final_report
from stratiflow.runner.replay import replay
from stratiflow.runner.report import metrics_report
from stratiflow.validation.parse import event_from_object

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "curation.json"
PAGE = ROOT / "docs" / "curation.md"
BEGIN, END = "<!-- eval-curation:begin -->", "<!-- eval-curation:end -->"

#: Stationary streams (one concept) and drifting ones (``*_drift``: a switch at DRIFT_POSITION).
STREAMS = ["sea", "hyperplane", "agrawal", "sea_drift", "stagger_drift"]
STRATEGIES = ["random", "uncertainty", "variable_uncertainty"]
BUDGETS = [0.05, 0.1, 0.2]
#: Contradiction bounds of the label filter; the goal speaks of the first.
FILTERS = [0.95, 0.9, 0.8]
#: Below this accuracy lost to noise, the share of it recovered is not measurable (unless
#: the filter itself loses more than this).
MIN_LOSS = 0.01
#: The budget the goals speak of.
GOAL_BUDGET = 0.1
#: Full labelling: no ``active`` section, every label is learned.
FULL = "full"
MODEL_NAME = " | ".join(s.path.rsplit(".", 1)[-1] for s in DEFAULT_MODEL)


def is_drifting(name: str) -> bool:
    return name.endswith("_drift")


def drift_point(name: str, n: int) -> int | None:
    """Where a drifting stream switches concept (``None``: stationary, or too short)."""
    return DRIFT_POSITION if is_drifting(name) and n > DRIFT_POSITION else None


def variant_name(strategy: str, budget: float | None) -> str:
    return FULL if budget is None else f"{strategy} @ {budget:g}"


def active_sections(strategy: str, budget: float | None, window: int, seed: int) -> dict[str, Any]:
    """The config of one active-learning variant (``budget`` None: full labelling)."""
    if budget is None:
        return {"seed": seed}
    return {
        "seed": seed,
        "active": {
            "strategy": strategy,
            "budget": budget,
            "budget_window": window,
            "simulate": True,
        },
    }


def flip_labels(
    events: list[dict[str, Any]], share: float, seed: int
) -> tuple[list[dict[str, Any]], set[str]]:
    """Copies of ``events`` with ``share`` of their labels wrong, and the flipped events' ids.

    Exactly ``round(share * labelled)`` labelled events are picked (seeded); a binary label
    becomes the other class, a multi-class one another class drawn uniformly.
    """
    rng = random.Random(seed)
    classes = sorted({e["label"] for e in events if e["label"] is not None}, key=repr)
    labelled = [i for i, e in enumerate(events) if e["label"] is not None]
    chosen = set(rng.sample(labelled, round(share * len(labelled)))) if len(classes) > 1 else set()
    out = []
    for i, e in enumerate(events):
        if i in chosen:
            others = [c for c in classes if c != e["label"]]
            e = {**e, "label": others[0] if len(others) == 1 else rng.choice(others)}
        out.append(e)
    return out, {events[i]["id"] for i in chosen}


def run_active(
    events: list[dict[str, Any]], sections: dict[str, Any], drift_at: int | None
) -> dict[str, Any]:
    """One active-learning variant through ``replay``: accuracy, label share, requests."""
    cfg = load_config(sections)
    t0 = time.perf_counter()
    result = replay(events, cfg)
    seconds = time.perf_counter() - t0
    correct = [p.y_pred == p.y_true for p in result.predictions]
    n = len(correct)
    index = {e["id"]: i for i, e in enumerate(events)}
    report = result.reports[-1]
    assert report["final"], "the last report is the key's final one"
    counts = report["counts"]
    active = report.get("active") or {}
    requested_at = [index[r["id"]] for r in result.label_requests]
    row: dict[str, Any] = {
        "accuracy": sum(correct) / n,
        "accuracy_last_quarter": _share(correct[n - n // 4 :]),
        "labelled": counts["labelled"],
        "learned": counts["learned"],
        "label_share": counts["learned"] / counts["labelled"],
        "requested": active.get("requested"),
        "refused_by_budget": active.get("refused_by_budget"),
        "limit": active.get("limit"),
        "withheld": (report.get("curation") or {}).get("withheld", 0),
        "seconds": round(seconds, 2),
    }
    if drift_at is not None:
        row["accuracy_after_drift"] = _share(correct[drift_at:])
    if drift_at is not None and report.get("active"):
        row["requests_after_drift"] = sum(i >= drift_at for i in requested_at)
        row["requests_before_drift"] = sum(i < drift_at for i in requested_at)
    # for the HTML report, not the JSON results
    row["_records"] = {"metrics": result.reports, "label_requests": result.label_requests}
    return row


def drive(events: list[dict[str, Any]], cfg: Config) -> dict[str, Any]:
    """Run events through :func:`step` one by one, as ``replay`` does without a sampler.

    Returns the predictions, the final report per key, and which events' labels the label
    filter dropped (the key's ``curation.dropped`` count rose during their step) and which
    were seen once the filter could act (the model had learned ``warmup`` examples).
    """
    states: dict[str, ModelState] = {}
    predictions = []
    dropped: set[str] = set()
    armed: set[str] = set()
    warmup = cfg.curation.label_filter.warmup
    every = cfg.metrics.report_every
    for obj in events:
        event = event_from_object(obj)
        if not isinstance(event, Event):
            raise ValueError(f"not a valid event: {event.reason}: {event.detail}")
        state = states.get(event.key)
        if state is None:
            state = states[event.key] = ModelState.new(cfg, event.key)
        before = _drops(state)
        if state.counts.learned >= warmup:
            armed.add(event.id)
        out = step(state, event, now_ms=0, report_every=every, learn=True, waiting=None)
        if out.prediction is not None:
            predictions.append(out.prediction)
        if out.report_due:  # as the job does: a report moves the key's report history on
            metrics_report(state, event.key, now_ms=0, probe=cfg.metrics.probe)
        if _drops(state) > before:
            dropped.add(event.id)
    reports = {key: final_report(states[key], cfg, now_ms=0) for key in sorted(states)}
    return {"predictions": predictions, "reports": reports, "dropped": dropped, "armed": armed}


def _drops(state: ModelState) -> int:
    return 0 if state.curation is None else sum(state.curation.dropped.values())


def check_against_replay(events: list[dict[str, Any]], cfg: Config, driven: dict[str, Any]) -> None:
    """Driving :func:`step` by hand computes what the job computes (``replay``)."""
    result = replay(events, cfg)
    ours = [(p.id, p.y_pred, p.proba, p.model_version) for p in driven["predictions"]]
    theirs = [(p.id, p.y_pred, p.proba, p.model_version) for p in result.predictions]
    assert ours == theirs, "per-event step() and replay() disagree on the predictions"
    for report in (r for r in result.reports if r["final"]):
        mine = driven["reports"][report["key"]]
        for part in ("report", "counts", "curation", "active", "metrics"):
            assert mine.get(part) == report.get(part), f"step() and replay() disagree: {part}"


def run_noise(
    events: list[dict[str, Any]],
    clean: dict[str, Any],
    flipped: set[str],
    sections: dict[str, Any],
    *,
    check: bool = False,
) -> dict[str, Any]:
    """One label-noise variant: accuracy against the clean labels, drops against flips."""
    cfg = load_config(sections)
    t0 = time.perf_counter()
    driven = drive(events, cfg)
    seconds = time.perf_counter() - t0
    if check:
        check_against_replay(events, cfg, driven)
    predictions = driven["predictions"]
    dropped, armed = driven["dropped"], driven["armed"]
    report = driven["reports"]["default"]
    right = sum(p.y_pred == clean[p.id] for p in predictions)
    given = sum(p.y_pred == p.y_true for p in predictions)
    caught = len(dropped & flipped)
    row: dict[str, Any] = {
        "accuracy": right / len(predictions),
        "accuracy_given_labels": given / len(predictions),
        "flipped": len(flipped),
        "learned": report["counts"]["learned"],
        "dropped": len(dropped),
        "dropped_reported": ((report.get("curation") or {}).get("dropped") or {}).get(
            "contradiction", 0
        ),
        "dropped_flipped": caught,
        "precision": caught / len(dropped) if dropped else None,
        "recall": caught / len(flipped) if flipped else None,
        "recall_after_warmup": (caught / len(flipped & armed)) if flipped & armed else None,
        "seconds": round(seconds, 2),
    }
    assert row["dropped"] == row["dropped_reported"]
    return row


def noise_variants(noise: float, filters: list[float], warmup: int) -> list[tuple[str, bool, Any]]:
    """(name, noisy labels, contradiction bound or None) per label-noise variant."""
    out: list[tuple[str, bool, Any]] = [("clean labels", False, None)]
    if filters:  # what the filter costs when no label is wrong
        out.append((f"clean labels, filter {filters[0]:g}", False, filters[0]))
    out.append((f"{noise:.0%} flipped", True, None))
    out += [(f"{noise:.0%} flipped, filter {f:g}", True, f) for f in filters]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="events per stream")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--streams", nargs="*", default=STREAMS, choices=dataset_names())
    parser.add_argument("--strategies", nargs="*", default=STRATEGIES, choices=STRATEGIES)
    parser.add_argument("--budgets", nargs="*", type=float, default=BUDGETS)
    parser.add_argument("--budget-window", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=0.2, help="share of labels flipped")
    parser.add_argument("--filters", nargs="*", type=float, default=FILTERS)
    parser.add_argument("--warmup", type=int, default=500, help="label filter warmup")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/curation.md")
    args = parser.parse_args(argv)

    active_runs: list[dict[str, Any]] = []
    noise_runs: list[dict[str, Any]] = []
    shown: dict[str, dict[str, Any]] = {}  # seed 1's active-learning records, for the report
    checked = False
    started = time.perf_counter()
    for name in args.streams:
        drift_at = drift_point(name, args.n)
        for seed in range(1, args.seeds + 1):
            events = list(river_events(name, n=args.n, seed=seed))
            base = {"stream": name, "seed": seed}
            variants = [(FULL, None)] + [(s, b) for s in args.strategies for b in args.budgets]
            for strategy, budget in variants:
                sections = active_sections(strategy, budget, args.budget_window, seed)
                row = run_active(events, sections, drift_at)
                records = row.pop("_records")
                if seed == 1:
                    shown[f"{name}: {variant_name(strategy, budget)}"] = records
                active_runs.append(
                    {**base, "variant": variant_name(strategy, budget), "strategy": strategy,
                     "budget": budget, **row}
                )  # fmt: skip
            clean = {e["id"]: e["label"] for e in events}
            noisy, flipped = flip_labels(events, args.noise, seed=1000 + seed)
            for variant, is_noisy, bound in noise_variants(args.noise, args.filters, args.warmup):
                config: dict[str, Any] = {"seed": seed}
                if bound is not None:
                    rules = {"contradiction": bound, "warmup": args.warmup}
                    config["curation"] = {"label_filter": rules}
                fed = noisy if is_noisy else events
                row = run_noise(
                    fed, clean, flipped if is_noisy else set(), config,
                    check=not checked and bound is not None and is_noisy,
                )  # fmt: skip
                checked = checked or (bound is not None and is_noisy)
                noise_runs.append({**base, "variant": variant, "contradiction": bound, **row})
            print(f"{name} seed {seed}: done ({time.perf_counter() - started:.0f} s)", flush=True)

    setup = {
        "n": args.n,
        "seeds": args.seeds,
        "streams": args.streams,
        "drift_point": DRIFT_POSITION,
        "strategies": args.strategies,
        "budgets": args.budgets,
        "budget_window": args.budget_window,
        "goal_budget": GOAL_BUDGET,
        "noise": args.noise,
        "filters": args.filters,
        "warmup": args.warmup,
        "model": MODEL_NAME,
        "checked_against_replay": checked,
        "seconds": round(time.perf_counter() - started, 1),
    }
    summary = summarise(active_runs, noise_runs)
    summary["goals"] = goals(summary, args.streams)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "setup": setup,
        "summary": summary,
        "runs": {"active": active_runs, "noise": noise_runs},
    }
    args.out.write_text(json.dumps(payload, indent=1))
    report = write_board_report(
        board_of_runs(shown),
        args.out.with_suffix(".html"),
        "eval-curation: active learning, seed 1 (one key per stream and variant)",
    )
    print(f"wrote {report.html} ({len(shown)} runs)")
    tables = format_tables(setup, summary)
    print(tables)
    if not args.no_docs:
        write_docs(tables)
    return 0


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _mean(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _average(rows: list[dict[str, Any]], fields: list[str]) -> dict[str, Any]:
    out = {f: _mean([r.get(f) for r in rows]) for f in fields if any(f in r for r in rows)}
    out["runs"] = len(rows)
    return out


ACTIVE_FIELDS = [
    "accuracy", "accuracy_last_quarter", "accuracy_after_drift", "label_share", "requested",
    "requests_before_drift", "requests_after_drift", "seconds",
]  # fmt: skip
NOISE_FIELDS = [
    "accuracy", "accuracy_given_labels", "flipped", "dropped", "dropped_flipped", "precision",
    "recall", "recall_after_warmup", "seconds",
]  # fmt: skip


def summarise(
    active_runs: list[dict[str, Any]], noise_runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Means over seeds per stream and variant; for noise, the share of the loss recovered."""
    active: dict[str, dict[str, Any]] = {}
    for row in active_runs:
        active.setdefault(row["stream"], {}).setdefault(row["variant"], [])
    for stream, variants in active.items():
        for variant in variants:
            mine = [r for r in active_runs if r["stream"] == stream and r["variant"] == variant]
            entry = _average(mine, ACTIVE_FIELDS)
            entry |= {"strategy": mine[0]["strategy"], "budget": mine[0]["budget"]}
            variants[variant] = entry
    noise: dict[str, dict[str, Any]] = {}
    for row in noise_runs:
        noise.setdefault(row["stream"], {}).setdefault(row["variant"], [])
    for stream, variants in noise.items():
        for variant in variants:
            mine = [r for r in noise_runs if r["stream"] == stream and r["variant"] == variant]
            entry = _average(mine, NOISE_FIELDS)
            entry["contradiction"] = mine[0]["contradiction"]
            variants[variant] = entry
        names = list(variants)
        clean = variants["clean labels"]["accuracy"]
        noisy_name = next(v for v in names if v.endswith("flipped"))
        noisy = variants[noisy_name]["accuracy"]
        for variant, entry in variants.items():
            entry["loss_vs_clean"] = clean - entry["accuracy"]
            if variant.startswith(noisy_name + ", filter"):
                lost = clean - noisy
                entry["lost_to_noise"] = lost
                entry["recovered"] = (entry["accuracy"] - noisy) / lost if lost > 0 else None
    return {"active": active, "noise": noise}


def goals(summary: dict[str, Any], streams: list[str]) -> list[dict[str, Any]]:
    """The goals, each with its numbers and met / missed (``None``: not measured here)."""
    out: list[dict[str, Any]] = []
    at = f" @ {GOAL_BUDGET:g}"
    for stream in streams:
        part = summary["active"].get(stream, {})
        full = part.get(FULL)
        unc, rnd = part.get("uncertainty" + at), part.get("random" + at)
        var = part.get("variable_uncertainty" + at)
        if not is_drifting(stream):
            if unc is None or rnd is None or full is None:
                continue
            gap = full["accuracy"] - unc["accuracy"]
            out.append(
                {
                    "goal": f"uncertainty beats random at {GOAL_BUDGET:.0%}",
                    "stream": stream,
                    "values": {"uncertainty": unc["accuracy"], "random": rnd["accuracy"]},
                    "met": unc["accuracy"] > rnd["accuracy"],
                }
            )
            out.append(
                {
                    "goal": f"uncertainty at {GOAL_BUDGET:.0%} within 3 points of full labelling",
                    "stream": stream,
                    "values": {"uncertainty": unc["accuracy"], "full": full["accuracy"],
                               "gap": gap},
                    "met": gap <= 0.03,
                }
            )  # fmt: skip
        elif unc is not None and var is not None and "requests_after_drift" in var:
            q_var, q_unc = var["accuracy_last_quarter"], unc["accuracy_last_quarter"]
            r_var, r_unc = var["requests_after_drift"], unc["requests_after_drift"]
            out.append(
                {
                    "goal": f"variable uncertainty keeps adapting after the drift where fixed "
                    f"uncertainty stalls ({GOAL_BUDGET:.0%})",
                    "stream": stream,
                    "values": {
                        "last_quarter_variable": q_var,
                        "last_quarter_fixed": q_unc,
                        "requests_after_drift_variable": r_var,
                        "requests_after_drift_fixed": r_unc,
                    },
                    "met": q_var > q_unc,
                }
            )
    for stream, part in summary["noise"].items():
        for variant, entry in part.items():
            if "recovered" not in entry:
                continue
            recovered, lost = entry["recovered"], entry["lost_to_noise"]
            met: bool | None = None
            if recovered is not None and lost >= MIN_LOSS:
                met = recovered >= 0.5
            elif entry["loss_vs_clean"] - lost > MIN_LOSS:
                met = False  # noise hardly costs anything, but the filter does
            out.append(
                {
                    "goal": f"{variant}: recovers at least half of the accuracy lost to noise",
                    "stream": stream,
                    "values": {
                        "recovered": recovered,
                        "accuracy": entry["accuracy"],
                        "lost_to_noise": lost,
                    },
                    "met": met,
                }
            )
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _verdict(met: bool | None) -> str:
    if met is None:
        return f"not measurable (noise costs < {MIN_LOSS * 100:g} point)"
    return "**met**" if met else "**missed**"


def format_tables(setup: dict[str, Any], summary: dict[str, Any]) -> str:
    """The Markdown tables of a run: active learning, drift, label noise, goals."""
    active, noise = summary["active"], summary["noise"]
    streams = list(active)
    lines = [
        f"{setup['n']} events per stream, {setup['seeds']} seeds; model {setup['model']}; "
        f"budget window {setup['budget_window']} events; means over seeds.",
        "",
        "**Active learning**: prequential accuracy over all events (label share used: labels "
        "learned / labelled events).",
        "",
        "| variant | " + " | ".join(streams) + " |",
        "|---|" + "---|" * len(streams),
    ]
    variants = list(dict.fromkeys(v for part in active.values() for v in part))
    for variant in variants:
        cells = []
        for stream in streams:
            e = active[stream].get(variant)
            cells.append("-" if e is None else f"{_fmt(e['accuracy'])} ({_fmt(e['label_share'])})")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    drifting = [s for s in streams if any("requests_after_drift" in e for e in active[s].values())]
    if drifting:
        lines += [
            "",
            f"**Drifting streams** (one abrupt switch at event {setup['drift_point']}): accuracy "
            "after the drift and over the last quarter, label requests before and after it.",
            "",
            "| stream | variant | accuracy | after drift | last quarter | requests before | "
            "requests after |",
            "|---|---|---|---|---|---|---|",
        ]
        for stream in drifting:
            for variant, e in active[stream].items():
                lines.append(
                    f"| {stream} | {variant} | {_fmt(e['accuracy'])} | "
                    f"{_fmt(e.get('accuracy_after_drift'))} | "
                    f"{_fmt(e.get('accuracy_last_quarter'))} | "
                    f"{_fmt(e.get('requests_before_drift'), 0)} | "
                    f"{_fmt(e.get('requests_after_drift'), 0)} |"
                )
    if noise:
        lines += [
            "",
            f"**Label noise**: {setup['noise']:.0%} of the labels flipped (seeded); accuracy "
            "against the clean labels; contradiction filter with warmup "
            f"{setup['warmup']}; precision and recall of the dropped labels against the "
            "flipped ones (recall after warmup: of the flipped labels the filter could see).",
            "",
            "| stream | variant | accuracy | loss vs clean | recovered | dropped | precision | "
            "recall | recall after warmup |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for stream, part in noise.items():
            for variant, e in part.items():
                lines.append(
                    f"| {stream} | {variant} | {_fmt(e['accuracy'])} | "
                    f"{_fmt(e['loss_vs_clean'])} | {_fmt(e.get('recovered'), 2)} | "
                    f"{_fmt(e['dropped'], 0)} | {_fmt(e['precision'])} | "
                    f"{_fmt(e['recall'])} | {_fmt(e['recall_after_warmup'])} |"
                )
    if summary.get("goals"):
        lines += ["", "**Goals**", "", "| goal | stream | numbers | verdict |", "|---|---|---|---|"]
        for g in summary["goals"]:
            numbers = ", ".join(
                f"{k.replace('_', ' ')} {_fmt(v, 0 if k.startswith('requests') else 3)}"
                for k, v in g["values"].items()
            )
            lines.append(f"| {g['goal']} | {g['stream']} | {numbers} | {_verdict(g['met'])} |")
    return "\n".join(lines).rstrip() + "\n"


def write_docs(tables: str) -> None:
    text = PAGE.read_text() if PAGE.exists() else "# Curation and active learning\n"
    if BEGIN not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(f"{head}{BEGIN}\n{tables}{END}{tail}")


if __name__ == "__main__":
    raise SystemExit(main())
