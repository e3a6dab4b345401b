"""Compare sampling strategies on an imbalanced stream; write the table in docs/sampling.md.

Run with ``make eval-sampling``. Each strategy runs the job's semantics over the
same events with :func:`stratiflow.runner.replay.replay` (the Flink tier proves the
Flink job computes the same predictions); ``--flink`` runs the real job graph
on a MiniCluster through the backtest runner instead (slower).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from stratiflow.config import load_config
from stratiflow.dashboard.report import board_of_runs, write_board_report
from stratiflow.io.sources import river_events
from stratiflow.runner.replay import replay

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sampling.json"
PAGE = ROOT / "docs" / "sampling.md"
BEGIN, END = "<!-- eval-sampling:begin -->", "<!-- eval-sampling:end -->"

STRATEGIES: list[tuple[str, dict[str, Any]]] = [
    ("none", {"strategy": "none"}),
    ("uniform rate 0.5", {"strategy": "uniform", "rate": 0.5}),
    ("balanced budget 20", {"strategy": "balanced", "budget": 20}),
    ("balanced budget 20 + oversample", {"strategy": "balanced", "budget": 20, "oversample": True}),
    ("balanced budget 20 + decay 0.9", {"strategy": "balanced", "budget": 20, "decay": 0.9}),
    ("target 30/70 budget 20", {"strategy": "target", "budget": 20, "target": {1: 0.3, 0: 0.7}}),
    ("undersample", {"strategy": "undersample"}),
    ("oversample (duplicates)", {"strategy": "oversample"}),
    ("oversample (synthetic)", {"strategy": "oversample", "synthetic": True}),
]


def evaluate(events: list[dict[str, Any]], sampling: dict[str, Any], flink: bool) -> dict[str, Any]:
    cfg = load_config({"sampling": {**sampling, "window": "1s", "max_out_of_orderness": 0}})
    t0 = time.perf_counter()
    if flink:
        from stratiflow.jobs.backtest import run_backtest

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.jsonl"
            path.write_text("".join(json.dumps(e) + "\n" for e in events))
            result = run_backtest(path, cfg, Path(tmp) / "out")
            reports = [json.loads(line) for line in (result.out_dir / "metrics.jsonl").open()]
            stats = [json.loads(line) for line in (result.out_dir / "sampling_stats.jsonl").open()]
        final = [r for r in reports if r["final"]][-1]
    else:
        replayed = replay(events, cfg)
        reports, stats = replayed.reports, replayed.stats
        final = reports[-1]
    cumulative = final["cumulative"]
    return {
        "accuracy": cumulative["accuracy"],
        "balanced_accuracy": cumulative["balanced_accuracy"],
        "minority_recall": cumulative["per_class"]["1"]["recall"],
        "minority_precision": cumulative["per_class"]["1"]["precision"],
        "macro_f1": cumulative["macro"]["f1"],
        "learned": final["counts"]["learned"],
        "trained_on": final["trained_on"],
        "seconds": time.perf_counter() - t0,
        # for the HTML report, not the JSON results
        "_records": {"metrics": reports, "sampling_stats": stats},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--minority-share", type=float, default=0.05)
    parser.add_argument("--flink", action="store_true", help="run the Flink backtest per strategy")
    parser.add_argument(
        "--no-readme", action="store_true", help="do not rewrite the table in docs/sampling.md"
    )
    args = parser.parse_args(argv)
    events = list(
        river_events(
            "hyperplane",
            n=args.n,
            seed=args.seed,
            interval_ms=10,
            minority_share=args.minority_share,
        )
    )
    rows = []
    runs = {}
    for name, sampling in STRATEGIES:
        row = {"strategy": name, "sampling": sampling, **evaluate(events, sampling, args.flink)}
        runs[name] = row.pop("_records")
        rows.append(row)
        print(
            f"{name:34s} acc {row['accuracy']:.4f}  balanced acc {row['balanced_accuracy']:.4f}  "
            f"minority recall {row['minority_recall']:.4f}  learned {row['learned']}",
            flush=True,
        )
    setup = {
        "dataset": "river hyperplane (10 features), positive class resampled to a share",
        "n": args.n,
        "seed": args.seed,
        "minority_share": args.minority_share,
        "window": "1s (100 events)",
        "model": "StandardScaler | LogisticRegression",
        "runner": "flink backtest" if args.flink else "stratiflow.runner.replay",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"setup": setup, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    report = write_board_report(
        board_of_runs(runs),
        RESULTS.with_suffix(".html"),
        f"eval-sampling: {len(runs)} strategies, minority share {args.minority_share}",
    )
    print(f"wrote {report.html.relative_to(ROOT)} (one key per strategy)")
    if not args.no_readme:
        write_readme(setup, rows)
    return 0


def write_readme(setup: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    lines = [
        BEGIN,
        f"Stream: {setup['dataset']} = {setup['minority_share']:.0%}, {setup['n']} events, "
        f"seed {setup['seed']}, window {setup['window']}, model {setup['model']}, "
        f"runner {setup['runner']}. Metrics are prequential over every event "
        "(each predicted before any learning from it).",
        "",
        "| strategy | accuracy | balanced accuracy | minority recall | minority precision "
        "| examples learned |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {r['accuracy']:.4f} | {r['balanced_accuracy']:.4f} "
            f"| {r['minority_recall']:.4f} | {r['minority_precision']:.4f} | {r['learned']} |"
        )
    lines.append(END)
    text = PAGE.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        PAGE.write_text(head + "\n".join(lines) + tail)
        print("updated the table in docs/sampling.md")
    else:
        print("docs/sampling.md has no eval-sampling markers; table not written")


if __name__ == "__main__":
    raise SystemExit(main())
