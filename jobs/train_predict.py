"""The train/predict job: Kafka events → keyed River models → predictions and metrics.

Run it with ``stratiflow submit --config job.yaml`` or
``flink run -py jobs/train_predict.py --config job.yaml``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from kafka.errors import KafkaError
from pyflink.common import Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from stratiflow.config import Config, ConfigError, load_cli_config
from stratiflow.io.kafka import end_offsets
from stratiflow.jobs.runtime import SetupError, create_env
from stratiflow.labels import labelled_examples
from stratiflow.operators.connectors import events_source, string_sink
from stratiflow.operators.labels import JoinLabels
from stratiflow.operators.model import RawModelOperator, SampledModelOperator, predictions_of
from stratiflow.operators.parse import ParseEvents
from stratiflow.operators.raw import RAW_BATCH, RAW_RECORD, batch_by_model_key, key_by_model_key
from stratiflow.operators.sampler import (
    AllocateWindow,
    ClassReservoirs,
    class_stratum,
    event_time_watermarks,
)
from stratiflow.operators.tags import (
    DEAD_LETTERS,
    LABEL_REQUESTS,
    METRICS,
    MODEL_EVENTS,
    SAMPLING_STATS,
    side_output,
)


@dataclass(frozen=True)
class PipelineOutputs:
    """The job's output streams of JSON strings, and the sampler's training batches."""

    predictions: DataStream
    metrics: DataStream
    dead_letters: DataStream
    #: Only with a sampler (``sampling.strategy`` other than ``none``).
    sampling_stats: DataStream | None = None
    training: DataStream | None = None
    #: Only with a drift detector (``drift.detector``).
    model_events: DataStream | None = None
    #: Only with active learning (``active.strategy``).
    label_requests: DataStream | None = None


def build_pipeline(
    raw: DataStream,
    cfg: Config,
    *,
    parse_parallelism: int | None = None,
    raw_labels: DataStream | None = None,
) -> PipelineOutputs:
    """Wire parse+validate → (label join) → (sampler) → key_by(model key) → model operator.

    ``raw`` is any stream of :data:`stratiflow.operators.raw.KEYED_RAW_RECORD` rows: the Kafka
    source in production, a bounded collection in the backtest and tests.
    ``raw_labels`` is the labels topic's stream when ``labels.source`` is
    ``topic``. ``parse_parallelism`` must equal the source's parallelism when
    the source is not partitioned by model key, so per-key order survives parsing.
    """
    if cfg.sampling.strategy == "none":
        return _fused_pipeline(raw, cfg, raw_labels)
    return _sampled_pipeline(raw, cfg, parse_parallelism, raw_labels)


def _sampled_pipeline(
    raw: DataStream, cfg: Config, parse_parallelism: int | None, raw_labels: DataStream | None
) -> PipelineOutputs:
    """With a sampler: parse → event time → (label join) → two-stage sampler, whose
    batches meet the events again in the model operator."""
    pickled = Types.PICKLED_BYTE_ARRAY()
    parsed = raw.process(ParseEvents(cfg), output_type=pickled).uid("parse-validate")
    parsed = _same_parallelism(parsed.name("parse + validate"), parse_parallelism)
    parse_rejects = side_output(parsed, DEAD_LETTERS)
    # Watermarks come from the records' own ts, before anything is keyed.
    parsed = _same_parallelism(
        parsed.assign_timestamps_and_watermarks(event_time_watermarks(cfg.sampling))
        .uid("event-time")
        .name("event time + watermarks"),
        parse_parallelism,
    )
    items = parsed
    if cfg.labels.source != "none":
        joinable = parsed
        if raw_labels is not None:
            labels = (
                raw_labels.process(ParseEvents(cfg, labels_only=True), output_type=pickled)
                .uid("parse-labels")
                .name("parse labels")
            )
            parse_rejects = parse_rejects.union(side_output(labels, DEAD_LETTERS))
            labels = labels.assign_timestamps_and_watermarks(
                event_time_watermarks(cfg.sampling)
            ).uid("labels-event-time")
            joinable = parsed.union(labels)
        items = (
            joinable.key_by(lambda record: record.key, key_type=Types.STRING())
            .process(JoinLabels(cfg), output_type=pickled)
            .uid("label-join")
            .name(f"labels: join by id (ttl {cfg.labels.ttl} ms)")
        )
        # Keyed from here on: per-key order no longer depends on the source's parallelism.
        parse_parallelism = None
    examples = _same_parallelism(
        items.flat_map(
            partial(labelled_examples, min_confidence=cfg.curation.label_filter.min_confidence),
            output_type=pickled,
        )
        .uid("labelled-only")
        .name("labelled examples"),
        parse_parallelism,
    )
    training = (
        examples.key_by(class_stratum, key_type=Types.STRING())
        .process(ClassReservoirs(cfg), output_type=pickled)
        .uid("sampler-class-reservoirs")
        .name(f"sampler: reservoir per class and {cfg.sampling.window} ms window")
        .key_by(lambda summary: summary.key, key_type=Types.STRING())
        .process(AllocateWindow(cfg), output_type=pickled)
        .uid("sampler-allocate")
        .name(f"sampler: allocate ({cfg.sampling.strategy})")
    )
    stats = side_output(training, SAMPLING_STATS)
    # The model's key_by runs at the events' parallelism; when that is pinned
    # (one ordered source), batches reach it through one channel per sender.
    batches = training
    if parse_parallelism is not None:
        batches = _same_parallelism(
            training.rebalance()
            .map(lambda batch: batch, output_type=pickled)
            .uid("sampler-handover")
            .name("batches to the model's parallelism"),
            parse_parallelism,
        )
    scored = (
        items.union(batches)
        .key_by(lambda item: item.key, key_type=Types.STRING())
        .process(SampledModelOperator(cfg), output_type=Types.STRING())
        .uid("model")
        .name("model: predict, score, learn")
    )
    dead_letters = parse_rejects.union(side_output(scored, DEAD_LETTERS))
    return PipelineOutputs(
        predictions_of(scored),
        side_output(scored, METRICS),
        dead_letters,
        stats,
        training,
        _model_events(scored, cfg),
        _label_requests(scored, cfg),
    )


def _fused_pipeline(raw: DataStream, cfg: Config, raw_labels: DataStream | None) -> PipelineOutputs:
    """Without a sampler: batch the raw records per model key in Java, key them, then
    one operator parses, validates, joins labels, predicts and learns.

    Every hop between Python operators costs a pickle, a trip through the JVM and
    back, and a wake-up; this graph has one.
    """
    batch_size, linger_ms = cfg.job.input_batch_size, cfg.job.input_batch_linger_ms
    # Thread mode hands a batch (an array of tuples) to Python through Flink's
    # PythonTypeUtils.TupleDataConverter, which fills one reused Object[] per tuple:
    # every record of a batch arrived as the batch's last record. Records go one by one.
    batched = batch_size > 1 and cfg.job.python_execution_mode != "thread"
    if batched:
        raw = batch_by_model_key(raw, batch_size, linger_ms)
        if raw_labels is not None:
            raw_labels = batch_by_model_key(raw_labels, batch_size, linger_ms)
    records = raw if raw_labels is None else raw.union(raw_labels)
    keyed = key_by_model_key(records, RAW_BATCH if batched else RAW_RECORD)
    scored = (
        keyed.process(RawModelOperator(cfg), output_type=Types.STRING())
        .uid("model")
        .name("model: parse, validate, join labels, predict, score, learn")
    )
    return PipelineOutputs(
        predictions_of(scored),
        side_output(scored, METRICS),
        side_output(scored, DEAD_LETTERS),
        model_events=_model_events(scored, cfg),
        label_requests=_label_requests(scored, cfg),
    )


def _model_events(scored: DataStream, cfg: Config) -> DataStream | None:
    """The model operator's drift and promotion records (none without a detector or
    candidates: no topic needed)."""
    wanted = cfg.drift.detector is not None or bool(cfg.candidates)
    return side_output(scored, MODEL_EVENTS) if wanted else None


def _label_requests(scored: DataStream, cfg: Config) -> DataStream | None:
    """The model operator's label requests (none without ``active.strategy``)."""
    return side_output(scored, LABEL_REQUESTS) if cfg.active.strategy != "none" else None


def _same_parallelism(stream: DataStream, parallelism: int | None) -> DataStream:
    """Operators between the source and the first key_by keep its parallelism (and order)."""
    return stream if parallelism is None else stream.set_parallelism(parallelism)


def attach_kafka_sinks(outputs: PipelineOutputs, cfg: Config) -> None:
    """Send each output stream to its topic (stable uids for savepoint compatibility)."""
    for name, stream, topic in (
        ("predictions", outputs.predictions, cfg.topics.predictions),
        ("metrics", outputs.metrics, cfg.topics.metrics),
        ("dead-letters", outputs.dead_letters, cfg.topics.dead_letters),
        ("sampling-stats", outputs.sampling_stats, cfg.topics.sampling_stats),
        ("model-events", outputs.model_events, cfg.topics.model_events),
        ("label-requests", outputs.label_requests, cfg.topics.label_requests),
    ):
        if stream is None:
            continue
        stream.sink_to(string_sink(cfg, topic)).uid(f"sink-{name}").name(f"Kafka: {topic}")


def build_kafka_job(
    env: StreamExecutionEnvironment, cfg: Config, *, bounded: bool = False
) -> PipelineOutputs:
    """The full Kafka-to-Kafka graph; ``bounded`` stops at the topics' current ends."""

    def source(topic: str, uid: str) -> DataStream:
        stop = (
            end_offsets(cfg.kafka.bootstrap_servers, topic, cfg.kafka.properties)
            if bounded
            else None
        )
        return env.from_source(
            events_source(cfg, stop, topic=topic),
            WatermarkStrategy.no_watermarks(),
            f"Kafka: {topic}",
        ).uid(uid)

    raw = source(cfg.topics.events, "source-events")
    labels = source(cfg.topics.labels, "source-labels") if cfg.labels.source == "topic" else None
    outputs = build_pipeline(raw, cfg, raw_labels=labels)
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
        "--from-savepoint", metavar="PATH", help="restore state and offsets from this savepoint"
    )
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
        env = create_env(cfg, savepoint=args.from_savepoint)
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
