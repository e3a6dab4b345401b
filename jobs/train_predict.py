"""The train/predict job: Kafka events → keyed River models → predictions and metrics.

Run it with ``stratiflow submit --config job.yaml`` or
``flink run -py jobs/train_predict.py --config job.yaml``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # `flink run -py jobs/train_predict.py` runs this as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka.errors import KafkaError
from pyflink.common import Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from jobs.runtime import SetupError, create_env
from operators.connectors import events_source, string_sink
from operators.model import ModelOperator
from operators.parse import ParseEvents
from operators.tags import DEAD_LETTERS, METRICS
from stratiflow.config import Config, ConfigError, load_cli_config
from stratiflow.kafka_io import end_offsets


@dataclass(frozen=True)
class PipelineOutputs:
    """The job's three output streams, each of JSON strings."""

    predictions: DataStream
    metrics: DataStream
    dead_letters: DataStream


def build_pipeline(
    raw: DataStream, cfg: Config, *, parse_parallelism: int | None = None
) -> PipelineOutputs:
    """Wire parse+validate → key_by(model key) → model operator onto raw records.

    ``raw`` is any stream of :data:`operators.raw.RAW_RECORD` rows: the Kafka
    source in production, a bounded collection in the backtest and tests.
    ``parse_parallelism`` must equal the source's parallelism when the source
    is not partitioned by model key, so per-key order survives parsing.
    """
    parsed = (
        raw.process(ParseEvents(cfg), output_type=Types.PICKLED_BYTE_ARRAY())
        .uid("parse-validate")
        .name("parse + validate")
    )
    if parse_parallelism is not None:
        parsed = parsed.set_parallelism(parse_parallelism)
    scored = (
        parsed.key_by(lambda event: event.key, key_type=Types.STRING())
        .process(ModelOperator(cfg), output_type=Types.STRING())
        .uid("model")
        .name("model: predict, score, learn")
    )
    dead_letters = parsed.get_side_output(DEAD_LETTERS).union(scored.get_side_output(DEAD_LETTERS))
    return PipelineOutputs(scored, scored.get_side_output(METRICS), dead_letters)


def attach_kafka_sinks(outputs: PipelineOutputs, cfg: Config) -> None:
    """Send each output stream to its topic (stable uids for savepoint compatibility)."""
    for name, stream, topic in (
        ("predictions", outputs.predictions, cfg.topics.predictions),
        ("metrics", outputs.metrics, cfg.topics.metrics),
        ("dead-letters", outputs.dead_letters, cfg.topics.dead_letters),
    ):
        stream.sink_to(string_sink(cfg, topic)).uid(f"sink-{name}").name(f"Kafka: {topic}")


def build_kafka_job(
    env: StreamExecutionEnvironment, cfg: Config, *, bounded: bool = False
) -> PipelineOutputs:
    """The full Kafka-to-Kafka graph; ``bounded`` stops at the topic's current end."""
    stop = (
        end_offsets(cfg.kafka.bootstrap_servers, cfg.topics.events, cfg.kafka.properties)
        if bounded
        else None
    )
    raw = env.from_source(
        events_source(cfg, stop), WatermarkStrategy.no_watermarks(), f"Kafka: {cfg.topics.events}"
    ).uid("source-events")
    outputs = build_pipeline(raw, cfg)
    attach_kafka_sinks(outputs, cfg)
    return outputs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, help="job YAML (defaults apply when omitted)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a config value, e.g. --set metrics.report_every=100",
    )
    parser.add_argument("--bootstrap-servers", help="override kafka.bootstrap_servers")
    parser.add_argument(
        "--bounded",
        action="store_true",
        help="read the events topic up to its current end, then finish",
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> Config:
    return load_cli_config(args.config, args.set, args.bootstrap_servers)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = config_from_args(args)
        env = create_env(cfg)
        build_kafka_job(env, cfg, bounded=args.bounded)
    except (ConfigError, SetupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:  # only --bounded talks to Kafka before the job starts
        print(
            f"error: cannot read the end offsets of {cfg.topics.events!r} from "
            f"{cfg.kafka.bootstrap_servers}: {exc}",
            file=sys.stderr,
        )
        return 2
    env.execute(cfg.job.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
