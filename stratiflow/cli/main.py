"""The ``stratiflow`` command line: produce, submit, tail, backtest, doctor, demo, local.

The CLI never imports PyFlink itself: jobs run in their own Python process
(``python -m jobs.train_predict`` locally, ``flink run -py`` on a cluster), so
this module stays in the pure core. How a command fails (one ``error:`` line, exit
status 2) is :mod:`stratiflow.cli.errors`; progress bars are :mod:`stratiflow.cli.progress`.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from stratiflow.cli.child import run_child
from stratiflow.cli.dashboard import add_dashboard_commands
from stratiflow.cli.demo import run_demo
from stratiflow.cli.doctor import add_doctor_command, version_text
from stratiflow.cli.errors import (
    DEBUG_ENV,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    CliError,
    configure_logging,
    debug_enabled,
    run_command,
)
from stratiflow.cli.oracle import add_oracle_command
from stratiflow.cli.progress import LineCounter, Progress, count_lines
from stratiflow.cli.tables import format_tail
from stratiflow.config import Config, ConfigError, load_cli_config, redact
from stratiflow.config.fields import did_you_mean
from stratiflow.io import kafka as kafka_io
from stratiflow.io import sources
from stratiflow.io.preflight import check_broker, check_jars, check_kafka
from stratiflow.io.sources import dataset_names, is_label_record, jsonl_lines, record_key
from stratiflow.local import flink
from stratiflow.local.cli import add_local_commands, plural
from stratiflow.local.flink import stop_job
from stratiflow.local.paths import REPO_ROOT, local_paths
from stratiflow.local.procs import java_executable, job_environ
from stratiflow.records import Rejection, to_json_bytes
from stratiflow.snapshots import key_from_env, write_snapshot

__all__ = ["Progress", "build_parser", "main", "submit_command"]

#: The job graphs ``flink run -py`` gets: ``jobs/`` of the repo, installed as ``stratiflow.jobs``.
JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"


# -- shared helpers -------------------------------------------------------------------------


def _config_from(args: argparse.Namespace, *, check_model: bool = True) -> Config:
    cfg = load_cli_config(args.config, args.set, args.bootstrap_servers, check_model=check_model)
    args.kafka_servers = cfg.kafka.bootstrap_servers  # named in Kafka client errors
    return cfg


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="job YAML (defaults apply when omitted)")
    parser.add_argument("--bootstrap-servers", help="override kafka.bootstrap_servers")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override any config value, e.g. --set metrics.report_every=100",
    )


def _require_broker(cfg: Config) -> None:
    """Fail in seconds, with one sentence, when the broker is down or TLS to it fails
    with this config (e.g. a CA that did not sign the broker's certificate), not after
    the Kafka client's retries."""
    check_broker(cfg.kafka.bootstrap_servers, cfg.kafka.properties)


def _events_file(path: Path, flag: str = "--events") -> Path:
    """``path`` when it is a file that looks like JSONL; :class:`CliError` saying what is
    wrong otherwise."""
    if not path.exists():
        raise CliError(f"{path} does not exist ({flag} takes a JSONL file of events)")
    if path.is_dir():
        raise CliError(f"{path} is a directory ({flag} takes a JSONL file of events)")
    problem = _not_jsonl(path)
    if problem is not None:
        raise CliError(f"{path} is not JSONL: {problem} ({flag} takes one JSON event per line)")
    return path


def _not_jsonl(path: Path, lines: int = 20) -> str | None:
    """Why ``path`` does not look like JSONL (none of its first ``lines`` non-blank lines
    is a JSON object), or ``None`` (an empty file is JSONL without events)."""
    first: str | None = None
    for seen, (number, raw) in enumerate(jsonl_lines(path)):
        if seen >= lines:
            break
        try:
            if isinstance(json.loads(raw), dict):
                return None
            why = "is not a JSON object"
        except ValueError:  # UnicodeDecodeError too
            why = "is not JSON"
        first = first or f"line {number + 1} {why} ({raw[:40]!r})"
    return first


# -- produce --------------------------------------------------------------------------------


def _produce_records(args: argparse.Namespace) -> tuple[Iterable[bytes], int | None]:
    """The records ``produce`` sends, and how many there are when that is known."""
    source = str(args.source)
    keys = [k for k in (args.keys or "default").split(",") if k]
    start_ts = args.start_ts if args.start_ts is not None else int(time.time() * 1000)
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json", ".csv") or path.exists():
        if not path.exists():
            raise CliError(f"{path} does not exist")
        if path.is_dir():
            raise CliError(f"{path} is a directory; give a .jsonl or .csv file, or a dataset")
    if suffix != ".csv" and path.is_file():
        problem = _not_jsonl(path)
        if problem is not None:
            print(
                f"warning: {path} does not look like JSONL ({problem}); its lines are sent as "
                "they are, and the job will dead-letter what is not an event",
                file=sys.stderr,
            )
        return sources.jsonl_records(path), count_lines(path)
    if suffix == ".csv":
        events: Iterable[dict[str, Any]] = sources.csv_events(
            path,
            label_column=args.label_column,
            start_ts=start_ts,
            interval_ms=args.interval_ms,
        )
        return (to_json_bytes(e) for e in events), max(count_lines(path) - 1, 0)
    name = source.lower()
    if name not in dataset_names():
        raise CliError(
            f"{source!r} is neither a file nor a dataset (a .jsonl or .csv file, or one of: "
            f"{', '.join(dataset_names())}){did_you_mean(name, dataset_names())}"
        )
    if args.minority_share is not None and not 0.0 < args.minority_share < 1.0:
        raise CliError(f"--minority-share must be between 0 and 1, got {args.minority_share}")
    if not 0.0 <= args.unlabelled_fraction <= 1.0:
        raise CliError(
            f"--unlabelled-fraction must be between 0 and 1, got {args.unlabelled_fraction}"
        )
    events = sources.river_events(
        name,
        n=args.n,
        seed=args.seed,
        start_ts=start_ts,
        interval_ms=args.interval_ms,
        keys=keys,
        unlabelled_fraction=args.unlabelled_fraction,
        minority_share=args.minority_share,
    )
    if args.label_delay is not None:
        delayed = sources.with_delayed_labels(list(events), args.label_delay)
        return (to_json_bytes(e) for e in delayed), len(delayed)
    return (to_json_bytes(e) for e in events), sources.dataset_length(name, args.n)


def _read_from(records: Iterable[bytes], source: str) -> Iterator[bytes]:
    """``records``, with a file that cannot be read (not UTF-8, a broken CSV) reported as
    the file's fault."""
    try:
        yield from records
    except (ValueError, csv.Error) as exc:
        raise CliError(f"cannot read {source}: {exc}") from None


def cmd_produce(args: argparse.Namespace) -> int:

    cfg = _config_from(args, check_model=False)
    topic = args.topic or cfg.topics.events
    # Label records (no features) go to their own topic when the job reads them there.
    labels_topic = cfg.topics.labels if cfg.labels.source == "topic" else topic
    records, total = _produce_records(args)
    if args.limit is not None:
        total = args.limit if total is None else min(total, args.limit)
    _require_broker(cfg)
    producer = kafka_io.producer(cfg.kafka.bootstrap_servers, cfg.kafka.properties)
    progress = Progress(total, quiet=args.quiet)
    start = time.monotonic()
    sent = 0
    where = f"to {topic} on {cfg.kafka.bootstrap_servers}"
    try:
        for raw in _read_from(records, str(args.source)):
            if args.limit is not None and sent >= args.limit:
                break
            if args.rate:
                delay = start + sent / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            is_label = labels_topic != topic and is_label_record(raw)
            producer.send(labels_topic if is_label else topic, key=record_key(raw), value=raw)
            sent += 1
            progress.update()
        producer.flush()
    except KeyboardInterrupt:
        progress.close()
        print(f"interrupted: {progress.summary('produced', where)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        producer.close(timeout=10)  # after Ctrl-C or an error, do not wait for ever
        progress.close()
    print(progress.summary("produced", where), file=sys.stderr)
    return 0


# -- tail -----------------------------------------------------------------------------------


def cmd_tail(args: argparse.Namespace) -> int:

    cfg = _config_from(args, check_model=False)
    topic = getattr(cfg.topics, args.topic.replace("-", "_"), args.topic)
    follow = args.max is None and args.idle_exit is None
    _require_broker(cfg)
    count = 0
    try:
        for record in kafka_io.read_topic(
            cfg.kafka.bootstrap_servers,
            topic,
            cfg.kafka.properties,
            from_beginning=args.from_beginning,
            max_records=args.max,
            idle_timeout_s=args.idle_exit if args.idle_exit is not None else 3.0,
            follow=follow,
            read_uncommitted=args.read_uncommitted,
        ):
            value = record.value or b""
            print(value.decode("utf-8", "replace") if args.json else format_tail(value))
            count += 1
    except KeyboardInterrupt:
        pass  # how a follow ends: the count below, exit 0
    print(f"({count} records from {topic})", file=sys.stderr)
    return 0


def cmd_transactions(args: argparse.Namespace) -> int:
    """List (and with ``--abort``, abort) the open Kafka transactions of the job's sinks."""

    cfg = _config_from(args, check_model=False)
    _require_broker(cfg)
    prefix = f"{cfg.job.transactional_id_prefix}-"
    bootstrap = cfg.kafka.bootstrap_servers
    # A running job rotates its transactions at every checkpoint; one much older than
    # that belongs to an attempt that died (or hangs).
    older_than = (
        args.older_than
        if args.older_than is not None
        else 2 * cfg.job.checkpoint_interval_ms / 1000 + 30
    )
    try:
        found = kafka_io.open_transactions(bootstrap, prefix, cfg.kafka.properties)
    except KafkaError as exc:
        print(f"error: cannot list the transactions on {bootstrap}: {exc}", file=sys.stderr)
        return 2
    print(
        f"{plural(len(found), 'open transaction')} of job {cfg.job.name!r} "
        f"(transactional ids {prefix}*) on {bootstrap}"
    )
    now_ms = time.time() * 1000
    left = 0
    for txn in found:
        age = txn.age_s(now_ms)
        print(
            f"  {txn.transactional_id}  {txn.state}, open {age:.0f} s (the broker aborts it "
            f"after {txn.timeout_ms / 1000:.0f} s); partitions {', '.join(txn.partitions)}"
        )
        if not args.abort:
            left += 1
        elif age < older_than:
            left += 1
            print(f"    kept: younger than {older_than:.0f} s, it may belong to a running job")
        else:
            kafka_io.abort_transaction(bootstrap, txn.transactional_id, cfg.kafka.properties)
            print("    aborted (its records stay invisible to read_committed readers)")
    if found and not args.abort:
        print(
            "A job that died with a transaction open holds back every read_committed reader "
            "of those partitions until the transaction times out. Resume the job from its "
            "last checkpoint (`submit --from-savepoint`), which commits what that checkpoint "
            "covered, or, if it will not be resumed, abort them: "
            "`stratiflow transactions --abort` (same --config)."
        )
    return 1 if args.abort and left else 0


# -- submit / backtest ----------------------------------------------------------------------


def _job_args(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    if args.config:
        out += ["--config", str(Path(args.config).resolve())]
    for item in args.set:
        out += ["--set", item]
    if args.bootstrap_servers:
        out += ["--bootstrap-servers", args.bootstrap_servers]
    if getattr(args, "bounded", False):
        out.append("--bounded")
    return out


def submit_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The command (and environment) that runs the job, locally or on a cluster."""
    env = job_environ()
    job = str(JOBS_DIR / "train_predict.py")
    if not args.jobmanager:
        local = [sys.executable, "-m", "stratiflow.jobs.train_predict", *_job_args(args)]
        if args.from_savepoint:
            local += ["--from-savepoint", args.from_savepoint]
        return local, env

    host, _, port = args.jobmanager.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("--jobmanager", f"expected HOST:PORT, got {args.jobmanager!r}")
    env.update(flink.cluster_env(args.flink_instance) if args.flink_instance else {})
    env["PYFLINK_CLIENT_EXECUTABLE"] = sys.executable
    command = [
        str(flink.flink_cli()),
        "run",
        f"-Drest.address={host}",
        f"-Drest.port={port}",
        # stratiflow must be installed where the cluster's Python runs (the venv here,
        # the image in deploy/); shipping dirs with -pyfs would put their contents on
        # sys.path and shadow real packages.
        "-pyclientexec",
        sys.executable,
    ]
    if args.detached:
        command.append("-d")
    if args.from_savepoint:
        command += ["-s", args.from_savepoint]
    command += ["-py", job, *_job_args(args)]
    return command, env


def cmd_submit(args: argparse.Namespace) -> int:
    cfg = _config_from(args)  # fail here, with the field's name, not inside Flink
    print(
        f"job {cfg.job.name}: {cfg.topics.events} -> {cfg.topics.predictions}, "
        f"{cfg.topics.metrics}, {cfg.topics.dead_letters} on {cfg.kafka.bootstrap_servers} "
        f"(kafka properties: {redact(cfg.kafka.properties)})",
        file=sys.stderr,
    )
    if not args.no_preflight:
        java_executable("the job (PyFlink starts a JVM)")
        check_jars(local_paths().lib_dir)
        for warning in check_kafka(cfg):
            print(f"warning: {warning}", file=sys.stderr)
    command, env = submit_command(args)
    if args.detached and not args.jobmanager:
        log = local_paths().log_dir / f"job-{int(time.time())}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as handle:
            proc = subprocess.Popen(
                command,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO_ROOT,
            )
        print(f"job running in the background (pid {proc.pid}, log {log})")
        return 0
    return _child_status("the job", run_child(command, env=env, cwd=REPO_ROOT))


def _child_status(what: str, code: int) -> int:
    """The exit status for a job's own: 0, or 2 with one ``error:`` line (unless the job
    printed its own: it exits 2 after an ``error:`` line of its own)."""
    if code in (0, EXIT_ERROR):
        return code
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    print(f"error: {what} {how} (its output is above)", file=sys.stderr)
    return EXIT_ERROR


def _jobmanager(value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise CliError(f"--jobmanager: expected HOST:PORT (e.g. 127.0.0.1:8081), got {value!r}")
    return value


def cmd_stop(args: argparse.Namespace) -> int:

    location = stop_job(_jobmanager(args.jobmanager), job_id=args.job, savepoint_dir=args.savepoint)
    if location:
        print(location)
        print(
            f"savepoint written; resume with: stratiflow submit --from-savepoint {location} ...",
            file=sys.stderr,
        )
    else:
        print("job cancelled", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train offline on a JSONL file (the job's own semantics) and write signed snapshots."""
    from stratiflow.runner.replay import replay
    from stratiflow.validation.parse import parse_event

    cfg = _config_from(args)
    path = _events_file(Path(args.events))
    key = key_from_env(cfg.snapshots.key_env)
    progress = Progress(count_lines(path), unit="records")
    rejected: list[tuple[int, Rejection]] = []

    def parsed() -> Iterator[Any]:
        for number, raw in jsonl_lines(path):
            record = parse_event(raw, rules=cfg.validation)
            progress.update()
            if isinstance(record, Rejection):
                rejected.append((number, record))
            else:
                yield record

    try:
        result = replay(parsed(), cfg)
    except KeyboardInterrupt:
        progress.close()
        print(f"interrupted: {progress.summary('read')}; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        progress.close()
    used = progress.count - len(rejected)
    if used == 0:
        first = (
            f"; line {rejected[0][0] + 1}: {rejected[0][1].reason} ({rejected[0][1].detail})"
            if rejected
            else ""
        )
        raise CliError(
            f"{path} holds no valid event ({len(rejected)} lines rejected{first}); "
            "nothing to train on"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for model_key, state in sorted(result.states.items()):
        target = out / f"{model_key}.snap"
        write_snapshot(target, state.model, key=key, model_key=model_key)
        final = next(r for r in result.reports if r["final"] and r["key"] == model_key)
        accuracy = final["cumulative"]["accuracy"]
        print(
            f"{target}: key {model_key}, learned {state.model_version} examples, "
            f"prequential accuracy {'-' if accuracy is None else f'{accuracy:.4f}'}"
        )
    summary = progress.summary("trained on", f"({used:,} used, {len(rejected):,} rejected)")
    print(f"{summary}; {plural(len(result.states), 'snapshot')} in {out}", file=sys.stderr)
    return 0


#: The backtest's output files whose lines answer an input record (one each).
_ANSWERS = ("predictions.jsonl", "dead_letters.jsonl")


def cmd_backtest(args: argparse.Namespace) -> int:
    _config_from(args)
    events = _events_file(Path(args.events))
    java_executable("the backtest (PyFlink starts a JVM)")
    check_jars(local_paths().lib_dir)
    out = Path(args.out).resolve()
    command = [
        sys.executable,
        "-m",
        "jobs.backtest",
        "--events",
        str(events.resolve()),
        "--out",
        str(out),
        *_job_args(args),
    ]
    # Each input record ends as a prediction or a dead letter (label records as neither):
    # the lines of those two files, against the input's, are the progress.
    counters = [LineCounter(out / name, since=time.time()) for name in _ANSWERS]
    progress = Progress(count_lines(events), unit="records")

    def poll() -> None:
        progress.set(sum(c.poll() for c in counters))

    try:
        code = run_child(command, cwd=REPO_ROOT, env=job_environ(), every=poll)
    finally:
        progress.close()
    if code != 0:
        return _child_status("the backtest", code)
    predictions, dead = (c.poll() for c in counters)
    progress.set(predictions + dead)
    detail = f"with {predictions:,} predictions and {dead:,} dead letters"
    print(f"{progress.summary('backtest answered', detail)}; outputs in {out}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:

    return run_demo(port=args.port, keep=args.keep)


# -- parser ---------------------------------------------------------------------------------


class _VersionAction(argparse.Action):
    """``--version``: the versions are looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(version_text())
        parser.exit()


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser under ``parser`` (``local broker`` included), each once."""
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield sub
                    yield from _subparsers(sub)


def _add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """``--debug`` before or after the subcommand (``stratiflow tail metrics --debug``)."""
    help_text = f"print tracebacks and the libraries' log messages (or set {DEBUG_ENV}=1)"
    parser.add_argument("--debug", action="store_true", help=help_text)
    for sub in _subparsers(parser):
        if "--debug" not in sub._option_string_actions:
            # SUPPRESS: not given after the subcommand leaves the top-level value alone.
            sub.add_argument(
                "--debug", action="store_true", default=argparse.SUPPRESS, help=help_text
            )


EXIT_STATUSES = (
    "exit status: 0 success; 1 the command ran and its answer is no (`transactions --abort` "
    "kept one, the demo's check failed); 2 error (one `error:` line says what to fix); "
    "3 `local ... status`: not running; 130 interrupted (Ctrl-C)"
)


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="stratiflow", description=__doc__.splitlines()[0], epilog=EXIT_STATUSES
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print the versions of stratiflow and its engines"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("produce", help="send events from a file or River dataset to Kafka")
    p.add_argument("source", help=f"a .jsonl or .csv file, or one of: {', '.join(dataset_names())}")
    p.add_argument("--topic", help="topic (default: the config's events topic)")
    p.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    p.add_argument("--limit", type=int, help="stop after this many events")
    p.add_argument("--n", type=int, help="events to generate from a River generator")
    p.add_argument("--seed", type=int, default=42, help="seed for generators")
    p.add_argument("--keys", help="comma-separated model keys, assigned round-robin")
    p.add_argument("--start-ts", type=int, help="event time of the first event (ms; default now)")
    p.add_argument("--interval-ms", type=int, default=1000, help="event-time step between events")
    p.add_argument(
        "--unlabelled-fraction",
        type=float,
        default=0.0,
        help="share of generated events sent without a label",
    )
    p.add_argument(
        "--minority-share",
        type=float,
        help="make a binary generator imbalanced: share of the positive class, e.g. 0.05",
    )
    p.add_argument("--label-column", default="label", help="CSV column holding the label")
    p.add_argument(
        "--label-delay",
        type=int,
        metavar="MS",
        help="send each generated label later, as a label record MS of event time after "
        "its event (to the labels topic when labels.source is topic)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_args(p)
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("submit", help="run the train/predict job (MiniCluster or a cluster)")
    _add_config_args(p)
    p.add_argument(
        "--jobmanager",
        metavar="HOST:PORT",
        help="submit to this Flink cluster's REST endpoint instead of a MiniCluster",
    )
    p.add_argument("--flink-instance", help="use the config dir of this `stratiflow local flink`")
    p.add_argument("--detached", action="store_true", help="return once the job is submitted")
    p.add_argument(
        "--bounded",
        action="store_true",
        help="read the events topic up to its current end, then finish",
    )
    p.add_argument(
        "--from-savepoint",
        metavar="PATH",
        help="start from this savepoint (or retained checkpoint): same model, same offsets",
    )
    p.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the checks that the broker answers and the input topics exist",
    )
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("train", help="train offline on a JSONL file; write signed snapshots")
    p.add_argument("--events", required=True, help="a JSONL file of events (and label records)")
    p.add_argument("--out", required=True, help="directory for <model key>.snap files")
    _add_config_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("stop", help="stop a job on a cluster, with a savepoint or cancelled")
    p.add_argument("--jobmanager", required=True, metavar="HOST:PORT", help="the cluster's REST")
    p.add_argument("--job", help="job id (default: the one running job)")
    p.add_argument(
        "--savepoint",
        metavar="DIR",
        help="stop with a savepoint in DIR (a path or URI) and print its location; "
        "without it the job is cancelled",
    )
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser(
        "tail",
        help="print records from predictions, metrics, dead-letters, model-events or "
        "label-requests",
    )
    p.add_argument(
        "topic",
        help="predictions | metrics | dead-letters | model-events | label-requests | "
        "sampling-stats | events | any topic",
    )
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, help="stop after this many records")
    p.add_argument("--idle-exit", type=float, help="stop after this many seconds without records")
    p.add_argument("--json", action="store_true", help="print raw JSON lines")
    p.add_argument(
        "--read-uncommitted",
        action="store_true",
        help="also show records of open or aborted transactions (debugging; by default only "
        "committed records, what the exactly-once sinks have made final, are shown)",
    )
    _add_config_args(p)
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser(
        "transactions",
        help="list, or abort, the open Kafka transactions a dead job's exactly-once sinks left",
        description=(
            "Lists the open transactions whose transactional id is the job's "
            "(job.transactional_id_prefix, by default its name). A job that died with one "
            "open and is not resumed blocks read_committed readers of those partitions until "
            "the transaction times out (job.transaction_timeout_ms). --abort fences each "
            "one older than --older-than: its records are dropped for good, so prefer "
            "resuming the job from its last checkpoint when you can."
        ),
    )
    p.add_argument("--abort", action="store_true", help="abort them (exit 1 if any is kept)")
    p.add_argument(
        "--older-than",
        type=float,
        metavar="SECONDS",
        help="only abort transactions open longer than this (default: twice the checkpoint "
        "interval plus 30 s, so that a running job's current transaction is left alone)",
    )
    _add_config_args(p)
    p.set_defaults(func=cmd_transactions)

    p = sub.add_parser("backtest", help="run the job graph on a JSONL file, write JSONL outputs")
    p.add_argument("--events", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    _add_config_args(p)
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("demo", help="broker + Phishing + job on an embedded Flink, live metrics")
    p.add_argument("--port", type=int, default=9092, help="local broker port")
    p.add_argument("--keep", action="store_true", help="leave the broker running afterwards")
    p.set_defaults(func=cmd_demo)

    add_oracle_command(sub, _add_config_args, _config_from)
    add_dashboard_commands(sub, _add_config_args, _config_from)
    add_doctor_command(sub, _add_config_args, _config_from)
    add_local_commands(sub)
    _add_debug_flag(parser)  # last: every subcommand above gets it
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``stratiflow`` command line.

    Parameters
    ----------
    argv
        The arguments after the program's name (``None``: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: the subcommand's (0 on success), 2 after an error, printed as
        one ``error: ...`` line on stderr (with the traceback too under ``--debug`` or
        ``STRATIFLOW_DEBUG=1``), 130 after Ctrl-C; see :mod:`stratiflow.cli.errors`.

    Raises
    ------
    SystemExit
        On ``--help``, ``--version`` or arguments the parser refuses (as :mod:`argparse`
        does: usage, then one error line, status 2).
    """
    args = build_parser().parse_args(argv)
    debug = debug_enabled(getattr(args, "debug", False))
    configure_logging(debug)
    return run_command(args.func, args, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
