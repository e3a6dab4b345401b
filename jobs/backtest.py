"""Backtest: the train/predict job graph on a bounded JSONL file, outputs to files."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from pyflink.common import WatermarkStrategy
from pyflink.datastream.connectors import Sink
from pyflink.java_gateway import get_gateway

from stratiflow.config import Config, ConfigError
from stratiflow.io.sources import jsonl_lines
from stratiflow.jobs.runtime import SetupError, create_env
from stratiflow.jobs.train_predict import build_pipeline, config_from_args
from stratiflow.operators.connectors import jsonl_file_source

OUTPUT_FILES = {
    "predictions": "predictions.jsonl",
    "metrics": "metrics.jsonl",
    "dead_letters": "dead_letters.jsonl",
    "sampling_stats": "sampling_stats.jsonl",
    "model_events": "model_events.jsonl",
    "label_requests": "label_requests.jsonl",
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
    file as their topic and the 0-based line number as their offset. The files are
    written by a sink in the JVM (``io.stratiflow.flink.LineFileSink``), so no output
    record crosses back into Python.
    """
    # One bounded source subtask has no idle split to wait out, and idleness would let
    # Flink's watermark run past records still on their way at the end of the file.
    cfg = replace(cfg, sampling=replace(cfg.sampling, idle_timeout=0))
    env = create_env(cfg, embedded=True)
    source = jsonl_file_source(events, cfg.validation.max_payload_bytes)
    raw = (
        env.from_source(source, WatermarkStrategy.no_watermarks(), f"file: {events.name}")
        .set_parallelism(1)
        .uid("source-file")
    )
    # One source subtask, so parse at parallelism 1 to keep each key's order.
    outputs = build_pipeline(raw, cfg, parse_parallelism=1)
    out_dir.mkdir(parents=True, exist_ok=True)
    jvm = get_gateway().jvm
    for name, file in OUTPUT_FILES.items():
        path = out_dir / file
        stream = getattr(outputs, name)
        if stream is None:
            path.write_text("")  # the job has no such output: an empty file, as before
            continue
        sink = Sink(jvm.io.stratiflow.flink.LineFileSink(str(path.resolve())))
        stream.sink_to(sink).set_parallelism(1).uid(f"file-{name}").name(f"file: {file}")
    env.execute(f"{cfg.job.name}-backtest")
    counts = {name: _lines(out_dir / file) for name, file in OUTPUT_FILES.items()}
    return BacktestResult(sum(1 for _ in jsonl_lines(events)), out_dir=out_dir, **counts)


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


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
