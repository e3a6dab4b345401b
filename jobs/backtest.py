"""Backtest: the train/predict job graph on a bounded JSONL file, outputs to files."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from pyflink.common import Types

from stratiflow.config import Config, ConfigError
from stratiflow.io.sources import jsonl_lines
from stratiflow.jobs.runtime import SetupError, create_env
from stratiflow.jobs.train_predict import build_pipeline, config_from_args
from stratiflow.operators.raw import KEYED_RAW_RECORD, raw_row

OUTPUT_FILES = {
    "p": "predictions.jsonl",
    "m": "metrics.jsonl",
    "d": "dead_letters.jsonl",
    "s": "sampling_stats.jsonl",
    "e": "model_events.jsonl",
    "r": "label_requests.jsonl",
}


@dataclass(frozen=True)
class BacktestResult:
    events: int
    predictions: int
    metrics: int
    dead_letters: int
    sampling_stats: int
    out_dir: Path
    model_events: int = 0
    label_requests: int = 0


def run_backtest(events: Path, cfg: Config, out_dir: Path) -> BacktestResult:
    """Run ``build_pipeline`` over ``events`` and write each output stream to a file.

    Each output file holds one contract record per line; dead letters name the
    file as their topic and the 0-based line number as their offset.
    """
    # One bounded source subtask has no idle split to wait out, and idleness would let
    # Flink's watermark run past records still on their way at the end of the file.
    cfg = replace(cfg, sampling=replace(cfg.sampling, idle_timeout=0))
    env = create_env(cfg, embedded=True)
    limit = cfg.validation.max_payload_bytes
    rows = [
        raw_row(str(events), 0, n, line, max_payload_bytes=limit) for n, line in jsonl_lines(events)
    ]
    raw = (
        env.from_collection(rows, type_info=KEYED_RAW_RECORD)
        .uid("source-file")
        .name(f"file: {events.name}")
    )
    # One source subtask, so parse at parallelism 1 to keep each key's order.
    outputs = build_pipeline(raw, cfg, parse_parallelism=1)
    streams = {
        "p": outputs.predictions,
        "m": outputs.metrics,
        "d": outputs.dead_letters,
        "s": outputs.sampling_stats,
        "e": outputs.model_events,
        "r": outputs.label_requests,
    }
    tagged_streams = [
        stream.map(lambda s, tag=tag: tag + s, output_type=Types.STRING())
        for tag, stream in streams.items()
        if stream is not None
    ]
    tagged = tagged_streams[0].union(*tagged_streams[1:])
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(OUTPUT_FILES, 0)
    handles = {tag: (out_dir / name).open("w") for tag, name in OUTPUT_FILES.items()}
    try:
        with tagged.execute_and_collect(job_execution_name=f"{cfg.job.name}-backtest") as results:
            for item in results:
                handles[item[0]].write(item[1:] + "\n")
                counts[item[0]] += 1
    finally:
        for handle in handles.values():
            handle.close()
    return BacktestResult(
        len(rows),
        counts["p"],
        counts["m"],
        counts["d"],
        counts["s"],
        out_dir,
        counts["e"],
        counts["r"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args(argv)
    try:
        result = run_backtest(args.events, config_from_args(args), args.out)
    except (ConfigError, SetupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {k: v for k, v in vars(result).items() if k != "out_dir"}
    print(json.dumps({**summary, "out_dir": str(result.out_dir)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
