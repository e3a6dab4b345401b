"""``make bench``: stratiflow against bare River and a hand-written Kafka loop, same run.

Every measurement runs on the same generated events, back to back, in child
processes of this one (so each has its own peak RSS):

1. **bare River** — ``predict_proba_one`` + ``learn_one`` over the events in
   memory, one model per key: the ceiling for one model key;
2. **Kafka loop** — kafka-python consumer → ``json.loads`` → River →
   kafka-python producer: what a user would write without Flink;
3. **stratiflow** — ``jobs/train_predict.py --bounded`` on a MiniCluster, from
   the local broker's events topic to its predictions topic, end to end.

``--peers`` adds, per stream, model and keys: River's ``progressive_val_score``, a
confluent-kafka loop, and the Python stream processors a user would pick instead of
PyFlink, Quix Streams + River and Bytewax + River (``benchmarks/stream_peers.py``, each in a
virtual environment of its own under the work dir, installed from PyPI the first time;
``--no-framework-peers`` skips them). Every peer's P(true) is compared with bare River's,
event by event; its rate counts only when they are all equal.

Throughput is *steady* events/s, (n - 1) / (last - first prediction's emitted
time), so the JVM's start-up (reported separately as ``startup_s``) does not
hide the per-event cost; ``total_s`` is the wall time of the whole run.
Latency runs (``--latency``) produce at a fixed share of the measured
throughput to a fresh topic while the job runs, and report the p50/p99 of
prediction ``emitted_at`` - produce time. Ratios compare numbers from this run
only: machines are shared and noisy, and absolute figures from another run
mean little.

Results go to ``benchmarks/results/bench.json`` and the table in docs/performance.md between
``<!-- bench:begin -->`` and ``<!-- bench:end -->``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `python benchmarks/bench.py`
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "bench.json"
PAGE = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
BROKER_INSTANCE = "bench"
#: The standalone Flink cluster the "standalone cluster" variant is submitted to.
CLUSTER_INSTANCE = "bench"
START_TS = 1_700_000_000_000

MODELS: dict[str, list[dict[str, Any]]] = {
    "lr": [{"preprocessing.StandardScaler": {}}, {"linear_model.LogisticRegression": {}}],
    "tree": [{"tree.HoeffdingTreeClassifier": {}}],
}
MODEL_NAMES = {"lr": "StandardScaler | LogisticRegression", "tree": "HoeffdingTreeClassifier"}


@dataclass(frozen=True)
class Variant:
    """One stratiflow configuration to measure."""

    name: str
    stream: str = "agrawal"
    model: str = "lr"
    keys: int = 1
    parallelism: int = 1
    #: Dotted config overrides (``--set``), e.g. ``{"update.mode": "micro_batch"}``.
    overrides: dict[str, Any] = field(default_factory=dict)
    #: The bare River baseline learns in batches of this size (micro-batch variants).
    batch: int = 0
    what: str = ""
    #: Submitted to a local standalone cluster (``stratiflow local flink``), not a MiniCluster.
    cluster: bool = False


#: Settings that trade throughput for latency (docs/performance.md): Python bundles
#: end every 20 ms (PyFlink hands a Python operator its input when a bundle ends or
#: 1 MB is buffered), network buffers flush every 10 ms, and the source's fetches
#: return within 20 ms (the broker holds a fetch for up to fetch.max.wait.ms).
LOW_LATENCY_NAME = "low-latency settings"
LOW_LATENCY: dict[str, Any] = {
    "job.flink.python.fn-execution.bundle.time": 20,
    "job.flink.execution.buffer-timeout.interval": "10ms",
    "kafka.properties.fetch.max.wait.ms": 20,
}

VARIANTS = [
    Variant("base", what="defaults: process mode, per-sample updates, label join on"),
    Variant("no-label-join", overrides={"labels.source": "none"}, what="labels.source none"),
    Variant(
        "thread",
        overrides={"job.python_execution_mode": "thread"},
        what="python.execution-mode thread",
    ),
    Variant(
        "input batch 1",
        overrides={"job.input_batch_size": 1},
        what="records cross into Python one at a time (default: per-key batches of 256)",
    ),
    Variant(
        "bundle 20 ms",
        overrides={"job.flink.python.fn-execution.bundle.time": 20},
        what="Python bundles end every 20 ms (default 100 ms)",
    ),
    Variant(
        LOW_LATENCY_NAME,
        overrides=LOW_LATENCY,
        what="bundles end every 20 ms, buffers flush every 10 ms, fetches return within 20 ms",
    ),
    Variant(
        "micro-batch-32",
        overrides={"update.mode": "micro_batch", "update.batch_size": 32},
        batch=32,
        what="update.mode micro_batch, 32 per batch",
    ),
    Variant(
        "micro-batch-256",
        overrides={"update.mode": "micro_batch", "update.batch_size": 256},
        batch=256,
        what="update.mode micro_batch, 256 per batch",
    ),
    Variant(
        "state on heap",
        overrides={"job.state_backend": "hashmap"},
        what="keyed state (the pickled model) on the heap, not in RocksDB (the default)",
    ),
    Variant("tree", model="tree", what="HoeffdingTreeClassifier"),
    Variant("2 keys p1", keys=2, what="two model keys, parallelism 1"),
    Variant("2 keys p2", keys=2, parallelism=2, what="two model keys, parallelism 2"),
    Variant(
        "balanced",
        overrides={
            "sampling.strategy": "balanced",
            "sampling.budget": 2000,
            "sampling.window": "10s",
        },
        what="sampling balanced, 2000 per 10 s window",
    ),
    Variant(
        "drift detector",
        overrides={"drift.detector": "{drift.ADWIN: {}}", "drift.adaptation": "none"},
        what="drift.detector ADWIN on the error, adaptation none (the cost of detecting)",
    ),
    Variant(
        "one challenger",
        overrides={
            "candidates": "[{name: l2, model: [{preprocessing.StandardScaler: {}}, "
            "{linear_model.LogisticRegression: {l2: 0.001}}]}]",
            "selection.margin": 1.0,
        },
        what="a second StandardScaler | LogisticRegression shadow-scored beside the main "
        "model (margin 1.0: never promoted, so the predictions stay bare River's)",
    ),
    Variant(
        "standalone cluster",
        cluster=True,
        what="the base job submitted to a local standalone cluster (`stratiflow local flink`, "
        "one TaskManager of 2 slots) with `stratiflow submit --jobmanager`",
    ),
    Variant("numeric50", stream="numeric50", what="50 numeric features"),
    Variant(
        "numeric50 micro-batch-256",
        stream="numeric50",
        overrides={"update.mode": "micro_batch", "update.batch_size": 256},
        batch=256,
        what="50 numeric features, micro_batch 256",
    ),
]


# -- events ---------------------------------------------------------------------------------


#: Model key names. Flink places a key on a subtask by hashing it into one of 128 key
#: groups, so two keys can share a subtask: "k0" and "k1" both land on subtask 0 of
#: 2 (``KeyGroupRangeAssignment.assignKeyToParallelOperator(Row.of(key), 128, 2)``),
#: which made "2 keys p2" a one-worker run. "k0" and "k2" land on subtasks 0 and 1.
KEY_NAMES = ("k0", "k2")


def key_name(i: int, keys: int) -> str:
    """The model key of the ``i``-th event when ``keys`` keys take turns."""
    slot = i % keys
    return KEY_NAMES[slot] if keys <= len(KEY_NAMES) else f"k{slot}"


def generate(stream: str, n: int, keys: int, seed: int = 42) -> list[dict[str, Any]]:
    """The benchmark's events, as the job's JSON contract; keys round-robin."""
    from river.datasets import synth

    if stream == "agrawal":
        source: Any = synth.Agrawal(classification_function=0, seed=seed)
    elif stream == "numeric50":
        source = synth.Hyperplane(seed=seed, n_features=50)
    else:
        raise ValueError(f"unknown stream {stream!r}")
    events = []
    for i, (x, y) in enumerate(source.take(n)):
        events.append(
            {
                "id": f"{stream}-{i}",
                "ts": START_TS + i,
                "features": {str(k): _plain(v) for k, v in x.items()},
                "label": _plain(y),
                "key": key_name(i, keys),
            }
        )
    return events


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def events_file(stream: str, n: int, keys: int, work: Path) -> Path:
    # "-v2": key names changed (KEY_NAMES); files cached under the old name are stale.
    path = work / f"{stream}-{n}-{keys}keys-v2.jsonl"
    if not path.exists():
        with path.open("w") as out:
            for event in generate(stream, n, keys):
                out.write(json.dumps(event) + "\n")
    return path


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as lines:
        for line in lines:
            yield json.loads(line)


# -- child workers (run in their own process) -----------------------------------------------


def model_steps(model: str) -> tuple[Any, ...]:
    """The River pipeline of a bench model name, as config model steps."""
    from stratiflow.config import ModelStep

    return tuple(ModelStep(p, s) for spec in MODELS[model] for p, s in spec.items())


def loop_step(
    models: dict[str, Any], new_model: Callable[[], Any], raw: bytes
) -> tuple[bytes, str, dict[Any, float], float]:
    """One record of a hand-written Kafka loop: parse, predict, learn (a model per key,
    made by ``new_model``); the prediction's JSON, the event's id, the probabilities and
    the wall clock."""
    e = json.loads(raw)
    m = models.get(e["key"])
    if m is None:
        m = models[e["key"]] = new_model()
    x = e["features"]
    proba = m.predict_proba_one(x)
    m.learn_one(x, e["label"])
    now = time.time()
    prediction = {
        "id": e["id"],
        "ts": e["ts"],
        "key": e["key"],
        "y_pred": max(proba, key=proba.get) if proba else None,
        "proba": proba,
        "emitted_at": int(now * 1000),
    }
    return json.dumps(prediction).encode(), e["id"], proba, now


def worker_bare(path: Path, model: str, batch: int, out: Path) -> None:
    """Bare River over events in memory, a model per key; writes eps and every prediction's
    P(true). Per sample: ``predict_proba_one`` then ``learn_one``. With ``batch``: River's
    many-methods on each key's batches, ``predict_proba_many`` on the batch then
    ``learn_many`` (what the job does with ``update.mode: micro_batch``)."""
    import pandas as pd

    from stratiflow.config.model import build_model

    steps = model_steps(model)
    events = list(read_events(path))
    models = {e["key"]: build_model(steps) for e in events}
    probas = [0.0] * len(events)
    by_key: dict[str, list[int]] = {}
    for i, e in enumerate(events):
        by_key.setdefault(e["key"], []).append(i)
    start = time.perf_counter()
    if batch:
        for key, index in by_key.items():
            m = models[key]
            for at in range(0, len(index), batch):
                chunk = index[at : at + batch]
                X = pd.DataFrame([events[i]["features"] for i in chunk])
                proba = m.predict_proba_many(X)
                p_true = proba[True] if True in proba.columns else [0.0] * len(chunk)
                for i, p in zip(chunk, p_true, strict=True):
                    probas[i] = float(p)
                m.learn_many(X, pd.Series([events[i]["label"] for i in chunk]))
    else:
        for i, e in enumerate(events):
            m = models[e["key"]]
            x = e["features"]
            probas[i] = m.predict_proba_one(x).get(True, 0.0)
            m.learn_one(x, e["label"])
    seconds = time.perf_counter() - start
    out.write_text(json.dumps({"seconds": seconds, "eps": len(events) / seconds, "p_true": probas}))


def worker_progressive_val_score(path: Path, model: str, out: Path) -> None:
    """River's own evaluation loop, ``evaluate.progressive_val_score`` with ``LogLoss`` (so it
    calls ``predict_proba_one``, as the job does), one model per key: its rate, and each
    event's P(true) from ``iter_progressive_val_score(yield_predictions=True)`` on a fresh
    model (untimed) for the parity check."""
    from river import evaluate, metrics

    from stratiflow.config.model import build_model

    steps = model_steps(model)
    events = list(read_events(path))
    per_key: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        per_key.setdefault(e["key"], []).append(e)
    seconds = 0.0
    p_true: dict[str, float] = {}
    for stream in per_key.values():
        dataset = [(e["features"], e["label"]) for e in stream]
        start = time.perf_counter()
        evaluate.progressive_val_score(dataset, build_model(steps), metrics.LogLoss())
        seconds += time.perf_counter() - start
        steps_out = evaluate.iter_progressive_val_score(
            dataset, build_model(steps), metrics.LogLoss(), yield_predictions=True
        )
        for e, state in zip(stream, steps_out, strict=True):
            p_true[e["id"]] = (state.get("Prediction") or {}).get(True, 0.0)
    out.write_text(json.dumps({"seconds": seconds, "eps": len(events) / seconds, "p_true": p_true}))


def worker_confluent_loop(
    bootstrap: str, topic: str, n: int, model: str, out_topic: str, out: Path
) -> None:
    """The loop a performance-aware user writes: librdkafka (confluent-kafka) consume in
    batches, parse, predict, learn, produce."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    from stratiflow.config.model import build_model

    new_model = partial(build_model, model_steps(model))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(partitions)])
    models: dict[str, Any] = {}
    p_true: dict[str, float] = {}
    seen = 0
    first = last = 0.0
    start = time.perf_counter()
    while seen < n:
        for record in consumer.consume(num_messages=1000, timeout=0.5):
            if record.error():
                continue
            value, event_id, proba, now = loop_step(models, new_model, record.value() or b"")
            producer.produce(out_topic, value)
            producer.poll(0)
            p_true[event_id] = proba.get(True, 0.0)
            first = first or now
            last = now
            seen += 1
    producer.flush()
    consumer.close()
    seconds = time.perf_counter() - start
    out.write_text(
        json.dumps(
            {
                "seconds": seconds,
                "eps": seen / seconds,
                "steady_eps": (seen - 1) / (last - first),
                "p_true": p_true,
            }
        )
    )


def worker_kafka_loop(
    bootstrap: str, topic: str, n: int, model: str, out_topic: str, out: Path
) -> None:
    """The loop a user would write: consume, parse, predict, learn, produce."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from stratiflow.config.model import build_model

    new_model = partial(build_model, model_steps(model))
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, max_poll_records=1000
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=256 * 1024)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    models: dict[str, Any] = {}
    seen = 0
    first = last = 0.0
    start = time.perf_counter()
    while seen < n:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                value, _, _, now = loop_step(models, new_model, record.value)
                producer.send(out_topic, value)
                first = first or now
                last = now
                seen += 1
    producer.flush()
    seconds = time.perf_counter() - start
    out.write_text(
        json.dumps(
            {"seconds": seconds, "eps": seen / seconds, "steady_eps": (seen - 1) / (last - first)}
        )
    )


#: What ``--core-costs`` compares with the base config, as config sections.
CORE_COST_CONFIGS: dict[str, dict[str, Any]] = {
    "drift detector": {"drift": {"detector": {"drift.ADWIN": {}}, "adaptation": "none"}},
    "one challenger": {
        "candidates": [
            {
                "name": "l2",
                "model": [
                    {"preprocessing.StandardScaler": {}},
                    {"linear_model.LogisticRegression": {"l2": 0.001}},
                ],
            }
        ],
        "selection": {"margin": 1.0},
    },
}


def worker_core_costs(path: Path, model: str, rounds: int, out: Path) -> None:
    """What the drift detector and one challenger cost per event in the model step itself
    (``stratiflow.runner.keyed.handle`` over the events in memory, no Flink): each config
    and the base one timed in turns, ``rounds`` times, the fastest of each kept, so the
    difference is not the noise of a shared machine between two job runs."""
    from stratiflow.config import load_config
    from stratiflow.learning.learner import ModelState
    from stratiflow.records import Event
    from stratiflow.runner.keyed import handle
    from stratiflow.validation.parse import event_from_object

    parsed = (event_from_object(e) for e in read_events(path))
    events = [e for e in parsed if isinstance(e, Event)]
    configs = {"base": {}, **CORE_COST_CONFIGS}
    best = dict.fromkeys(configs, math.inf)
    for _ in range(rounds):
        for name, extra in configs.items():
            cfg = load_config({"model": MODELS[model], "labels": {"source": "none"}, **extra})
            states: dict[str, Any] = {}
            start = time.perf_counter()
            for event in events:
                state = states.get(event.key)
                if state is None:
                    state = states[event.key] = ModelState.new(cfg, event.key)
                handle(state, event, {}, cfg, now_ms=0)
            best[name] = min(best[name], time.perf_counter() - start)
    per_event = {name: seconds / len(events) * 1e6 for name, seconds in best.items()}
    costs = {name: per_event[name] - per_event["base"] for name in CORE_COST_CONFIGS}
    out.write_text(json.dumps({"us_per_event": per_event, "cost_us_per_event": costs}))


# -- measuring child processes --------------------------------------------------------------


class TreeSampler:
    """Peak summed RSS of a process tree, and which kinds of process it had."""

    def __init__(self, pid: int, every: float = 0.5, also: tuple[int, ...] = ()) -> None:
        from stratiflow.local.procs import descendants, rss_mb

        self.pid, self.every, self.descendants, self.rss_mb = pid, every, descendants, rss_mb
        #: More trees to sample with it (a standalone cluster's daemons).
        self.also = also
        self.peak_mb = 0.0
        self.python_workers = 0
        #: Latest CPU seconds (user + system) of every process seen, by pid: (kind, seconds).
        self.cpu: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = [p for root in (self.pid, *self.also) for p in (root, *self.descendants(root))]
            self.peak_mb = max(self.peak_mb, sum(self.rss_mb(p) for p in pids))
            kinds = {p: _kind(p) for p in pids}
            workers = sum(1 for kind in kinds.values() if kind == "python_worker")
            self.python_workers = max(self.python_workers, workers)
            for p, kind in kinds.items():
                seconds = _cpu_seconds(p)
                if seconds is not None:
                    self.cpu[p] = (kind, seconds)
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds the tree used, by process kind (sampled: the last 0.5 s may be missing)."""
        totals: dict[str, float] = {}
        for kind, seconds in self.cpu.values():
            totals[kind] = round(totals.get(kind, 0.0) + seconds, 1)
        return totals

    def worker_cpu(self) -> list[float]:
        """CPU seconds of each Python worker, largest first: shows whether keys spread."""
        return sorted(
            (round(s, 1) for kind, s in self.cpu.values() if kind == "python_worker"),
            reverse=True,
        )


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _kind(pid: int) -> str:
    """jvm (MiniCluster: sources, shuffles, sinks, Beam runner), python_worker (a PyFlink
    process-mode worker; thread mode runs Python inside the JVM), or driver."""
    from stratiflow.local.procs import cmdline

    args = cmdline(pid)
    if args is None:
        return "other"
    if args and args[0].endswith("java"):
        return "jvm"
    if any("pyflink.fn_execution" in a for a in args):
        return "python_worker"
    return "driver"


def run_child(
    command: list[str],
    timeout: float,
    env: dict[str, str] | None = None,
    also: tuple[int, ...] = (),
) -> dict:
    """Run ``command`` in its own session, sampling its tree's RSS; raise on failure."""
    started = time.time()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sampler = TreeSampler(proc.pid, also=also)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise RuntimeError(
            f"{command[:4]} timed out after {timeout:.0f} s:\n{output.decode()[-3000:]}"
        ) from None
    finally:
        sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:4]} exited {proc.returncode}:\n{output.decode()[-3000:]}")
    return {
        "total_s": round(time.time() - started, 2),
        "peak_rss_mb": round(sampler.peak_mb, 1),
        "python_workers": sampler.python_workers,
        "cpu_s": sampler.cpu_by_kind(),
        "python_worker_cpu_s": sampler.worker_cpu(),
    }


# -- the broker and topics ------------------------------------------------------------------


def start_broker(port: int, instance: str = BROKER_INSTANCE) -> str:
    from stratiflow.local import broker

    return broker.start(port, instance=instance).bootstrap


def produce(bootstrap: str, topic: str, path: Path) -> int:
    from stratiflow.io.kafka import ensure_topics, producer

    ensure_topics(bootstrap, {topic: 4})
    out = producer(bootstrap)
    n = 0
    with path.open("rb") as lines:
        for line in lines:
            key = json.loads(line)["key"].encode()
            out.send(topic, value=line.rstrip(b"\n"), key=key)
            n += 1
    out.flush()
    out.close()
    return n


def read_predictions(bootstrap: str, topic: str, expected: int) -> list[dict[str, Any]]:
    from stratiflow.io.kafka import read_topic

    return [
        json.loads(r.value)
        for r in read_topic(bootstrap, topic, idle_timeout_s=5.0, max_records=expected * 2)
    ]


# -- the three contestants ------------------------------------------------------------------


def measure_bare(path: Path, model: str, batch: int, work: Path) -> dict[str, Any]:
    out = work / f"bare-{uuid.uuid4().hex[:8]}.json"
    child = run_child(
        [sys.executable, __file__, "--worker", "bare", str(path), model, str(batch), str(out)],
        timeout=1800,
    )
    result = json.loads(out.read_text())
    return {**child, **result}


#: The stream processors a user would pick instead of PyFlink (benchmarks/stream_peers.py):
#: peer name -> (virtual environment, what stream_peers.py runs). Each environment is made
#: under the work dir and gets the framework from PyPI, pinned, and the River (and NumPy)
#: of this environment, so the probabilities can match bare River's.
PEER_VENVS: dict[str, list[str]] = {
    "quixstreams": ["quixstreams==3.28.1"],
    "bytewax": ["bytewax[kafka]==0.21.1"],
}
FRAMEWORK_PEERS: dict[str, tuple[str, str]] = {
    # The model in Quix Streams' keyed State (pickled in its RocksDB store).
    "quix_streams": ("quixstreams", "quix"),
    # The same application with the models in a dict in process memory.
    "quix_streams_memory": ("quixstreams", "quix-memory"),
    # The model in Bytewax's stateful_map state (the live object).
    "bytewax": ("bytewax", "bytewax"),
}
STREAM_PEERS = ROOT / "benchmarks" / "stream_peers.py"
#: Distributions whose versions a peer environment reports.
PEER_DISTS = ("quixstreams", "bytewax", "river", "numpy", "confluent-kafka")


def peer_venv(name: str, work: Path, timeout: float = 1200) -> dict[str, Any]:
    """The virtual environment ``<work>/peer-venvs/<name>`` for a framework peer: made with
    this interpreter's ``venv`` and ``pip install`` of ``PEER_VENVS[name]`` and this
    environment's River and NumPy, once; later runs reuse it while its marker says it was
    completed with the same requirements. Returns its python, the install's seconds and
    the installed versions; raises RuntimeError when it cannot be made (no network, no
    wheel)."""
    import shutil
    from importlib import metadata

    requirements = [
        *PEER_VENVS[name],
        f"river=={metadata.version('river')}",
        f"numpy=={metadata.version('numpy')}",
        "typing_extensions",  # river 0.23 imports it without declaring it
    ]
    venv = work / "peer-venvs" / name
    python = venv / "bin" / "python"
    marker = venv / ".bench-complete.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("requirements") == requirements and python.exists():
            return {**info, "python": str(python), "reused": True}
    shutil.rmtree(venv, ignore_errors=True)  # an incomplete or stale one
    venv.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for step in (
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
    ):
        try:
            done = subprocess.run(
                step, capture_output=True, text=True, timeout=timeout, env=_peer_environ()
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{' '.join(step[:4])} timed out after {timeout:.0f} s") from None
        if done.returncode != 0:
            why = (done.stderr.strip() or done.stdout.strip() or "?").splitlines()[-1]
            raise RuntimeError(f"{' '.join(step[:4])} exited {done.returncode}: {why}")
    install_s = round(time.monotonic() - started, 1)
    probe = (
        "import json, importlib.metadata as m\n"
        "v = {}\n"
        f"for d in {PEER_DISTS!r}:\n"
        "    try: v[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(v))"
    )
    versions = json.loads(
        subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    )
    info = {"requirements": requirements, "install_s": install_s, "versions": versions}
    marker.write_text(json.dumps(info))
    return {**info, "python": str(python), "reused": False}


def _peer_environ() -> dict[str, str]:
    """This environment without what would point a peer's python at this venv."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop}


def measure_peers(
    bootstrap: str,
    topic: str,
    n: int,
    model: str,
    path: Path,
    bare_p_true: list[float],
    work: Path,
    frameworks: bool = True,
) -> dict[str, Any]:
    """River's progressive_val_score, the confluent-kafka loop and (``frameworks``) Quix
    Streams and Bytewax (``FRAMEWORK_PEERS``) on the same events, each with its largest
    P(true) difference from bare River: a rate counts (``counted``) only at 0.0 with every
    event predicted. A peer that fails, or whose environment cannot be made, is
    ``{"error": ...}``."""
    ids = [e["id"] for e in read_events(path)]
    runs: list[tuple[str, list[str], dict[str, str] | None, dict[str, Any]]] = [
        ("progressive_val_score", [sys.executable, __file__, "--worker", "pvs", str(path), model],
         None, {}),
        ("confluent_kafka_loop", [sys.executable, __file__, "--worker", "confluent-loop",
                                  bootstrap, topic, str(n), model,
                                  f"bench-cloop-{uuid.uuid4().hex[:8]}"], None, {}),
    ]  # fmt: skip
    peers: dict[str, Any] = {}
    venvs: dict[str, dict[str, Any]] = {}
    for name, (venv_name, kind) in (FRAMEWORK_PEERS if frameworks else {}).items():
        if venv_name not in venvs:
            try:
                venvs[venv_name] = peer_venv(venv_name, work)
            except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
                venvs[venv_name] = {"error": f"peer venv {venv_name}: {exc}".splitlines()[0]}
            print(f"peer venv {venv_name}: {venvs[venv_name]}", flush=True)
        venv = venvs[venv_name]
        if "error" in venv:
            peers[name] = {"error": venv["error"]}
            continue
        out_topic = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
        command = [venv["python"], str(STREAM_PEERS), kind, bootstrap, topic, str(n)]
        command += [json.dumps(MODELS[model]), out_topic]
        described = {k: venv[k] for k in ("install_s", "reused", "versions")}
        runs.append((name, command, _peer_environ(), {"venv": described}))
    for name, command, env, extra in runs:
        out = work / f"{name}-{uuid.uuid4().hex[:8]}.json"
        try:
            child = run_child([*command, str(out)], timeout=1800, env=env)
            result = json.loads(out.read_text())
        except (RuntimeError, OSError, ValueError) as exc:
            peers[name] = {"error": str(exc).splitlines()[0], **extra}
            continue
        p_true = result.pop("p_true")
        missing = sum(1 for i in ids if i not in p_true)
        worst = max((abs(p_true[i] - bare_p_true[k]) for k, i in enumerate(ids) if i in p_true),
                    default=float("nan"))  # fmt: skip
        peers[name] = {
            **child,
            **result,
            **extra,
            "missing": missing,
            "max_p_true_difference": worst,
            "counted": worst == 0.0 and missing == 0,
        }
    return peers


def measure_kafka_loop(bootstrap: str, topic: str, n: int, model: str, work: Path) -> dict:
    out = work / f"loop-{uuid.uuid4().hex[:8]}.json"
    out_topic = f"bench-loop-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, __file__, "--worker", "kafka-loop", bootstrap, topic, str(n)]
    child = run_child([*command, model, out_topic, str(out)], timeout=1800)
    return {**child, **json.loads(out.read_text())}


def job_config(variant: Variant, bootstrap: str, topic: str, run: str) -> dict[str, Any]:
    return {
        "job": {
            "name": f"bench-{run}",
            "parallelism": variant.parallelism,
            "checkpoint_interval_ms": 10_000,
        },
        "kafka": {"bootstrap_servers": bootstrap, "group_id": f"bench-{run}"},
        "topics": {
            "events": topic,
            "predictions": f"bench-{run}-predictions",
            "metrics": f"bench-{run}-metrics",
            "dead_letters": f"bench-{run}-dead-letters",
            "sampling_stats": f"bench-{run}-sampling-stats",
        },
        "model": MODELS[variant.model],
    }


def measure_stratiflow(
    variant: Variant,
    bootstrap: str,
    topic: str,
    n: int,
    work: Path,
    timeout: float = 3600,
    cluster: tuple[str, int] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the job bounded over the topic: on a MiniCluster, or submitted to the standalone
    cluster ``(instance, rest port)`` (its daemons' RSS and CPU are sampled with the client's)."""
    import yaml

    from stratiflow.local.procs import job_environ

    run = uuid.uuid4().hex[:8]
    cfg = job_config(variant, bootstrap, topic, run)
    config = work / f"job-{run}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    sets = [f"--set={k}={v}" for k, v in variant.overrides.items()]
    command = [
        sys.executable,
        "-m",
        "stratiflow.jobs.train_predict",
        "--config",
        str(config),
        "--bounded",
    ]
    also: tuple[int, ...] = ()
    if cluster is not None:
        from stratiflow.local import flink as local_flink

        instance, port = cluster
        command = [sys.executable, "-m", "stratiflow.cli.main", "submit", "--config", str(config)]
        command += ["--bounded", "--jobmanager", f"127.0.0.1:{port}", "--flink-instance", instance]
        also = tuple(local_flink.running_pids(instance))
    child = run_child([*command, *sets], timeout=timeout, env=job_environ(), also=also)
    predictions = read_predictions(bootstrap, cfg["topics"]["predictions"], n)
    by_id = {p["id"]: p for p in predictions}
    emitted = sorted(p["emitted_at"] for p in by_id.values())
    steady = (len(emitted) - 1) / max(1e-3, (emitted[-1] - emitted[0]) / 1000) if emitted else 0
    launched = child["total_s"]
    result = {
        **child,
        "predictions": len(predictions),
        "distinct_ids": len(by_id),
        "steady_eps": round(steady, 1),
        # From launch to the first prediction: JVM, MiniCluster and Python workers.
        "startup_s": round(launched - (emitted[-1] - emitted[0]) / 1000, 2) if emitted else None,
    }
    return result, list(by_id.values())


def measure_backtest(
    variant: Variant, path: Path, n: int, work: Path, timeout: float = 3600
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``stratiflow backtest`` on the events file with the variant's config: its steady
    rate from the predictions' ``emitted_at`` (start-up excluded, as for the Kafka job)."""
    import yaml

    from stratiflow.local.procs import job_environ

    run = uuid.uuid4().hex[:8]
    cfg = job_config(variant, "localhost:9", "unused", run)
    config = work / f"backtest-{run}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = work / f"backtest-{run}"
    sets = [f"--set={k}={v}" for k, v in variant.overrides.items()]
    command = [sys.executable, "-m", "stratiflow.cli.main", "backtest", "--events", str(path)]
    child = run_child(
        [*command, "--out", str(out), "--config", str(config), *sets],
        timeout=timeout,
        env=job_environ(),
    )
    with (out / "predictions.jsonl").open() as lines:
        predictions = [json.loads(line) for line in lines]
    emitted = sorted(p["emitted_at"] for p in predictions)
    span = max(1e-3, (emitted[-1] - emitted[0]) / 1000) if emitted else 0.0
    result = {
        **child,
        "predictions": len(predictions),
        "complete": len({p["id"] for p in predictions}) == n,
        "steady_eps": round((len(emitted) - 1) / span, 1) if emitted else 0.0,
        "startup_s": round(child["total_s"] - span, 2) if emitted else None,
    }
    return result, predictions


def parity(bare_p_true: list[float], predictions: list[dict[str, Any]], events: Path) -> float:
    """Largest |P(true)| difference between the job's predictions and bare River's."""
    index = {e["id"]: i for i, e in enumerate(read_events(events))}
    worst = 0.0
    for p in predictions:
        ours = next((v for k, v in p["proba"].items() if k in ("true", "True", "1")), 0.0)
        worst = max(worst, abs(ours - bare_p_true[index[p["id"]]]))
    return worst


# -- latency --------------------------------------------------------------------------------


def measure_latency(
    variant: Variant,
    bootstrap: str,
    rate: float,
    seconds: float,
    work: Path,
    broker_pid: int | None = None,
    load_client: str = "confluent-kafka",
    warmup: float = 10.0,
) -> dict[str, Any]:
    """Run the job unbounded, produce at ``rate`` events/s, measure emitted - produced.

    The first ``warmup`` seconds at the rate (the JVM's JIT still compiling) are
    reported apart (``warmup_p50_ms``/``warmup_p99_ms``), then ``seconds`` are
    measured. Besides p50/p99 it reports the p50 of the first and last third of the run
    (``keeps_up`` is false when the last third waits clearly longer: a growing
    backlog, so the rate is beyond what the job sustains while events are being
    produced) and the CPU seconds of the job, the broker and this producer.
    """
    import yaml

    from stratiflow.io.kafka import ensure_topics, read_topic
    from stratiflow.local.procs import job_environ

    run = uuid.uuid4().hex[:8]
    topic = f"bench-{run}-live"
    cfg = job_config(variant, bootstrap, topic, run)
    ensure_topics(bootstrap, {topic: 4, cfg["topics"]["predictions"]: 1})
    config = work / f"job-{run}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    sets = [f"--set={k}={v}" for k, v in variant.overrides.items()]
    log = work / f"job-{run}.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stratiflow.jobs.train_predict", "--config", str(config), *sets],
            cwd=ROOT,
            env=job_environ(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sampler = TreeSampler(proc.pid)
    templates = [_Template(event) for event in generate(variant.stream, 1000, variant.keys)]
    out = LoadProducer(bootstrap, load_client)
    predictions_topic = cfg["topics"]["predictions"]
    try:
        # Warm up until the job answers, so start-up is not counted as latency.
        deadline = time.monotonic() + 120
        warm = 0
        while not _answered(bootstrap, predictions_topic):
            if time.monotonic() > deadline or proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the job did not start answering within 120 s:\n{tail}")
            templates[warm % len(templates)].send(out, topic, f"warm-{warm}")
            warm += 1
            out.flush()
            time.sleep(0.5)
        start = time.monotonic()
        sent = _produce_at(out, templates, topic, "warmup-", rate, start, warmup)
        job_cpu = sampler.cpu_by_kind()
        broker_cpu = _cpu_seconds(broker_pid) if broker_pid else None
        producer_cpu = time.process_time()
        # The same clock as the warm-up, so the rate does not pause between the two.
        sent = _produce_at(out, templates, topic, "live-", rate, start + warmup, seconds, sent)
        out.flush()
        producer_cpu = time.process_time() - producer_cpu
        if broker_cpu is not None:
            broker_cpu = (_cpu_seconds(broker_pid) or broker_cpu) - broker_cpu  # type: ignore[arg-type]
        by_sent: list[tuple[int, int]] = []
        during_warmup: list[int] = []
        for record in read_topic(bootstrap, predictions_topic, idle_timeout_s=10.0):
            p = json.loads(record.value)
            if p["id"].startswith("live-"):
                by_sent.append((int(p["id"][5:]), p["emitted_at"] - p["ts"]))
            elif p["id"].startswith("warmup-"):
                during_warmup.append(p["emitted_at"] - p["ts"])
        job_cpu = {k: round(v - job_cpu.get(k, 0.0), 1) for k, v in sampler.cpu_by_kind().items()}
    finally:
        out.close()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        sampler.stop()
    by_sent.sort()
    latencies = sorted(latency for _, latency in by_sent)
    third = len(by_sent) // 3
    first = _quantile(sorted(latency for _, latency in by_sent[:third]), 0.5)
    last = _quantile(sorted(latency for _, latency in by_sent[-third:]), 0.5) if third else None
    during_warmup.sort()
    return {
        "rate": round(rate, 1),
        "seconds": seconds,
        "warmup_seconds": warmup,
        "warmup_p50_ms": _quantile(during_warmup, 0.5),
        "warmup_p99_ms": _quantile(during_warmup, 0.99),
        "sent": sent,
        "answered": len(latencies),
        "p50_ms": _quantile(latencies, 0.5),
        "p99_ms": _quantile(latencies, 0.99),
        "p50_first_third_ms": first,
        "p50_last_third_ms": last,
        "keeps_up": _keeps_up(first, last) and len(latencies) == sent,
        "producer_client": out.client,
        "cpu_s": {
            **job_cpu,
            "broker": None if broker_cpu is None else round(broker_cpu, 1),
            "producer": round(producer_cpu, 1),
        },
        "peak_rss_mb": round(sampler.peak_mb, 1),
    }


#: A run whose last third waits longer than this (p50) has fallen behind, growing or not: at
#: 6021 ev/s a run held a steady p50 of ~4.7 s, a backlog built while the JVM warmed up.
KEEPS_UP_P50_MS = 1000


def _produce_at(
    out: LoadProducer,
    templates: list[_Template],
    topic: str,
    prefix: str,
    rate: float,
    start: float,
    seconds: float,
    offset: int = 0,
) -> int:
    """Send ``rate`` events/s from ``start`` (monotonic) for ``seconds``, ids ``prefix<n>``
    counted from 0; ``offset`` events were sent since ``start`` already. Returns how many
    this call sent."""
    sent = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            templates[(offset + sent) % len(templates)].send(out, topic, f"{prefix}{sent}")
            sent += 1
        time.sleep(0.001)
    return sent


def _keeps_up(first_p50: float | None, last_p50: float | None) -> bool:
    """No backlog: the last third of a run waits at most 1.5x (+ 50 ms) the first, and
    at most ``KEEPS_UP_P50_MS``."""
    if first_p50 is None or last_p50 is None:
        return False
    return last_p50 <= min(1.5 * first_p50 + 50, KEEPS_UP_P50_MS)


class _Template:
    """One event's JSON with its ``id`` and ``ts`` left open, so producing at a high rate
    costs the producer a byte join, not a ``json.dumps`` (it shares the 2 cores)."""

    def __init__(self, event: dict[str, Any]) -> None:
        rest = {k: v for k, v in event.items() if k not in ("id", "ts")}
        self.tail = b"," + json.dumps(rest, separators=(",", ":")).encode()[1:]
        self.key = event["key"].encode()

    def send(self, out: LoadProducer, topic: str, event_id: str) -> None:
        # ts is the produce time, so emitted_at - ts is the event's whole trip.
        head = f'{{"id":"{event_id}","ts":{int(time.time() * 1000)}'.encode()
        out.send(topic, head + self.tail, self.key)


class LoadProducer:
    """The latency runs' rate-limited producer: librdkafka (``confluent-kafka``, in the
    ``dev`` extra) when installed, else kafka-python.

    The load generator shares the 2 cores with the job and the broker: kafka-python
    took ~0.5 core to produce 3.4k events/s, which the job then did not have.
    ``client`` says which one ran, so results say what they were measured with.
    """

    def __init__(self, bootstrap: str, prefer: str = "confluent-kafka") -> None:
        self._confluent: Any = None
        self._kafka: Any = None
        if prefer == "confluent-kafka":
            try:
                import confluent_kafka
            except ImportError:
                pass
            else:
                self._confluent = confluent_kafka.Producer(
                    {"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"}
                )
                version = confluent_kafka.version()  # a str, or (str, int) in older releases
                self.client = (
                    f"confluent-kafka {version if isinstance(version, str) else version[0]}"
                )
        if self._confluent is None:
            from stratiflow.io.kafka import producer

            self._kafka = producer(bootstrap, linger_ms=1)
            self.client = "kafka-python"

    def send(self, topic: str, value: bytes, key: bytes) -> None:
        if self._kafka is not None:
            self._kafka.send(topic, value=value, key=key)
            return
        while True:
            try:
                self._confluent.produce(topic, value, key)
                break
            except BufferError:  # local queue full: let deliveries drain
                self._confluent.poll(0.01)
        self._confluent.poll(0)

    def flush(self) -> None:
        if self._kafka is not None:
            self._kafka.flush()
        elif self._confluent.flush(30) != 0:
            raise RuntimeError("the load producer could not deliver every event in 30 s")

    def close(self) -> None:
        if self._kafka is not None:
            self._kafka.close()
        else:
            self._confluent.flush(5)


def find_sustainable_rate(
    measure: Callable[[float], dict[str, Any]], ceiling: float, steps: int = 4
) -> tuple[float, list[dict[str, Any]]]:
    """The highest rate the job keeps up with while a live producer shares the machine.

    Bisects between 10 % and 100 % of ``ceiling`` (the drain rate of a pre-filled
    topic, measured with nobody producing); ``measure(rate)`` is one latency run
    (:func:`measure_latency`). Returns the highest rate that kept up, and every
    probe run.
    """
    probes: list[dict[str, Any]] = []

    def keeps_up(rate: float) -> bool:
        probes.append(measure(rate))
        print(f"sustainable-rate probe at {rate:.0f} ev/s: {probes[-1]}", flush=True)
        return bool(probes[-1]["keeps_up"])

    low, high = 0.1 * ceiling, ceiling
    kept_up: float | None = None
    for _ in range(steps):
        rate = (low + high) / 2
        if keeps_up(rate):
            low = kept_up = rate
        else:
            high = rate
    if kept_up is None and keeps_up(low):
        kept_up = low
    if kept_up is None:
        raise RuntimeError(f"the job kept up with no rate down to {low:.0f} ev/s")
    return kept_up, probes


def _answered(bootstrap: str, topic: str) -> bool:
    from stratiflow.io.kafka import read_topic

    return any(True for _ in read_topic(bootstrap, topic, idle_timeout_s=0.5, max_records=1))


def _quantile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    return float(values[min(len(values) - 1, math.ceil(q * len(values)) - 1)])


# -- the run --------------------------------------------------------------------------------


def progress_line(done: int, total: int, elapsed_s: float, name: str) -> str:
    """Where a bench run is: the variant starting, elapsed time and an ETA from the mean so far.

    >>> progress_line(2, 5, 120.0, "tree")
    '[3/5] tree: 2 of 5 variants done in 2 min 0 s, 0.017 variants/s, about 3 min 0 s to go'
    >>> progress_line(0, 5, 0.0, "base")
    '[1/5] base: starting'
    """
    if done == 0:
        return f"[1/{total}] {name}: starting"
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    left = (total - done) / rate if rate else 0.0
    return (
        f"[{done + 1}/{total}] {name}: {done} of {total} variants done in {_minutes(elapsed_s)}, "
        f"{rate:.3f} variants/s, about {_minutes(left)} to go"
    )


def _minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from stratiflow.local import broker

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    chosen = [v for v in VARIANTS if not args.variants or v.name in args.variants]
    extra = dict(item.split("=", 1) for item in args.set)
    chosen = [replace(v, overrides={**v.overrides, **extra}) for v in chosen]
    bootstrap = start_broker(args.port, args.instance)
    topics: dict[tuple[str, int], tuple[str, Path]] = {}
    results: dict[str, Any] = {
        "events": args.events,
        "latency_seconds": args.latency_seconds,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": [],
    }
    baselines: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    loops: dict[tuple[str, str, int], dict[str, Any]] = {}
    peers: dict[tuple[str, str, int], dict[str, Any]] = {}
    cluster: tuple[str, int] | None = None  # (instance, REST port), started when a variant needs it
    began = time.monotonic()
    try:
        for done, variant in enumerate(chosen):
            print(
                progress_line(done, len(chosen), time.monotonic() - began, variant.name), flush=True
            )
            key = (variant.stream, variant.keys)
            if key not in topics:
                path = events_file(variant.stream, args.events, variant.keys, work)
                topic = f"bench-{variant.stream}-{variant.keys}k-{uuid.uuid4().hex[:6]}"
                produce(bootstrap, topic, path)
                topics[key] = (topic, path)
            topic, path = topics[key]
            base_key = (variant.stream, variant.model, variant.keys, variant.batch)
            if base_key not in baselines:
                baselines[base_key] = measure_bare(path, variant.model, variant.batch, work)
            bare = baselines[base_key]
            loop_key = (variant.stream, variant.model, variant.keys)
            if loop_key not in loops and not args.no_kafka_loop:
                loops[loop_key] = measure_kafka_loop(
                    bootstrap, topic, args.events, variant.model, work
                )
            loop = loops.get(loop_key)
            if loop_key not in peers and args.peers and not variant.batch:
                peers[loop_key] = measure_peers(
                    bootstrap,
                    topic,
                    args.events,
                    variant.model,
                    path,
                    bare["p_true"],
                    work,
                    frameworks=not args.no_framework_peers,
                )
            if variant.cluster and cluster is None:
                from stratiflow.local import flink as local_flink
                from stratiflow.local.procs import free_port

                info = local_flink.start(free_port(), slots=2, instance=CLUSTER_INSTANCE)
                cluster = (CLUSTER_INSTANCE, info.rest_port)
            try:
                job, predictions = measure_stratiflow(
                    variant,
                    bootstrap,
                    topic,
                    args.events,
                    work,
                    timeout=args.run_timeout,
                    cluster=cluster if variant.cluster else None,
                )
            except RuntimeError as exc:  # one variant failing must not lose the others
                error = str(exc).splitlines()[0]
                results["runs"].append(
                    {"variant": variant.name, "what": variant.what, "error": error}
                )
                print(f"{variant.name}: FAILED: {error}", flush=True)
                continue
            row: dict[str, Any] = {
                "variant": variant.name,
                "what": variant.what,
                "stream": variant.stream,
                "model": MODEL_NAMES[variant.model],
                "keys": variant.keys,
                "parallelism": variant.parallelism,
                "overrides": variant.overrides,
                "bare_river": {k: v for k, v in bare.items() if k != "p_true"},
                "kafka_loop": loop,
                "peers": peers.get(loop_key),
                "stratiflow": job,
                "complete": job["distinct_ids"] == args.events,
                "max_p_true_difference": parity(bare["p_true"], predictions, path),
                "vs_bare_river": round(job["steady_eps"] / bare["eps"], 3),
                "vs_kafka_loop": round(job["steady_eps"] / loop["steady_eps"], 3) if loop else None,
            }
            if args.core_costs and variant.name == chosen[0].name:
                costs = work / f"core-costs-{uuid.uuid4().hex[:8]}.json"
                command = [sys.executable, __file__, "--worker", "core-costs", str(path)]
                run_child([*command, variant.model, "5", str(costs)], timeout=1800)
                results["core_costs"] = json.loads(costs.read_text())
            if args.backtest and variant.name == chosen[0].name:
                try:
                    backtest, replayed = measure_backtest(
                        variant, path, args.events, work, timeout=args.run_timeout
                    )
                except RuntimeError as exc:
                    row["backtest"] = {"error": str(exc).splitlines()[0]}
                else:
                    backtest["max_p_true_difference"] = parity(bare["p_true"], replayed, path)
                    backtest["vs_bare_river"] = round(backtest["steady_eps"] / bare["eps"], 3)
                    row["backtest"] = backtest
            results["runs"].append(row)
            print(_line(row), flush=True)
        if args.latency and chosen:
            base = next(r for r in results["runs"] if r["variant"] == chosen[0].name)
            if "error" in base:
                raise RuntimeError(f"no throughput to base the latency run on: {base['error']}")
            variant = chosen[0]
            # Low-latency settings run at the same rates: a higher share of their own,
            # lower, throughput (see the "bundle 20 ms" row).
            tuned = replace(variant, overrides={**variant.overrides, **LOW_LATENCY})
            measured = [(variant.name, variant)]
            if args.latency_low:
                measured.append((LOW_LATENCY_NAME, tuned))
            broker_pid = broker.status(args.instance).pid  # type: ignore[union-attr]

            def measure(which: Variant, rate: float) -> dict[str, Any]:
                return measure_latency(
                    which,
                    bootstrap,
                    rate,
                    args.latency_seconds,
                    work,
                    broker_pid,
                    args.load_client,
                    args.latency_warmup,
                )

            # The drain rate of a pre-filled topic is higher than what the job sustains
            # while a producer and the broker's produce path share the 2 cores, so the
            # shares are of the sustainable rate when it is measured.
            reference, of = base["stratiflow"]["steady_eps"], "drain"
            if args.latency_sustainable:
                reference, probes = find_sustainable_rate(partial(measure, variant), reference)
                of = "sustainable"
                results["sustainable"] = {"eps": round(reference, 1), "probes": probes}
            # --latency-rate: absolute rates (to repeat a run), as shares of the reference.
            shares = [r / reference for r in args.latency_rate] or args.latency_share
            runs = []
            for share in shares:
                rate = share * reference
                for label, which in measured:
                    latency = measure(which, rate)
                    runs.append({"variant": label, "share": round(share, 3), "of": of, **latency})
                    print(f"latency ({label}) at {rate:.0f} ev/s: {latency}", flush=True)
            results["latency"] = runs[0]
            results["latency_runs"] = runs
    finally:
        broker.stop(args.instance, purge=True)  # its topics were this run's only
        if cluster is not None:
            from stratiflow.local import flink as local_flink

            local_flink.stop(CLUSTER_INSTANCE, purge=True)
    return results


def _line(row: dict[str, Any]) -> str:
    job = row["stratiflow"]
    loop = row["kafka_loop"] or {}
    return (
        f"{row['variant']:<28} bare {row['bare_river']['eps']:>8.0f}  "
        f"loop {loop.get('steady_eps', float('nan')):>8.0f}  "
        f"stratiflow {job['steady_eps']:>8.0f} ev/s  x bare {row['vs_bare_river']:.2f}  "
        f"x loop {row['vs_kafka_loop'] or float('nan'):.2f}  rss {job['peak_rss_mb']:.0f} MB  "
        f"complete {row['complete']}  Δp {row['max_p_true_difference']:.1e}"
        + "".join(
            f"\n    {name:<26} {_peer_text(peer)}"
            for name, peer in (row.get("peers") or {}).items()
        )
    )


def _peer_rate(peer: dict[str, Any]) -> float:
    """A peer's steady events/s (progressive_val_score has no Kafka: its whole-run rate)."""
    return float(peer.get("steady_eps", peer.get("eps", float("nan"))))


def _peer_text(peer: dict[str, Any]) -> str:
    if "error" in peer:
        return f"failed: {peer['error']}"
    return (
        f"{_peer_rate(peer):>8.0f} ev/s  Δp {peer.get('max_p_true_difference', float('nan')):.1e}"
        + (f"  rss {peer['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in peer else "")
        + (f"  {peer['framework']}" if "framework" in peer else "")
        + ("" if peer.get("counted", True) else "  NOT COUNTED (differs from bare River)")
    )


def peers_table(results: dict[str, Any]) -> list[str]:
    """The peers of each (stream, model, keys) measured with ``--peers``, against bare River
    and the first stratiflow variant of that group in the run."""
    groups: dict[tuple[str, str, int], dict[str, Any]] = {}
    for row in results["runs"]:
        if "error" not in row and row.get("peers"):
            groups.setdefault((row["stream"], row["model"], row["keys"]), row)
    if not groups:
        return []
    lines = [
        "",
        "Peers (same events, same broker). x bare River: the peer's rate over bare River's; "
        "stratiflow ÷ peer: the stratiflow variant named in the first column over the peer. "
        "A rate counts only when every P(true) equals bare River's (max |ΔP(true)| 0).",
        "",
        "| stream/model/keys | peer | steady ev/s | x bare River | stratiflow ÷ peer "
        "| max \\|ΔP(true)\\| | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for (stream, model, keys), row in groups.items():
        group = f"{stream} / {_cell(model)} / {keys} ({row['variant']})"
        bare, job = row["bare_river"]["eps"], row["stratiflow"]["steady_eps"]
        for name, peer in row["peers"].items():
            version = peer.get("framework") or peer.get("venv", {}).get("versions", {})
            label = f"{name} ({version})" if isinstance(version, str) else name
            if "error" in peer:
                why = _cell(peer["error"].split("] ", 1)[-1].rstrip(":"))
                lines.append(f"| {group} | {label} | failed: {why} | | | | |")
                continue
            rate = _peer_rate(peer)
            counted = peer.get("counted", peer.get("max_p_true_difference") == 0.0)
            ratios = f"{rate / bare:.2f} | {job / rate:.2f}" if counted and rate else "- | -"
            shown = f"{rate:.0f}" if counted else f"{rate:.0f} (not counted)"
            rss = f"{peer['peak_rss_mb']:.0f}" if "peak_rss_mb" in peer else "-"
            lines.append(
                f"| {group} | {label} | {shown} | {ratios} | "
                f"{peer['max_p_true_difference']:.1e} | {rss} |"
            )
    return lines


def _cell(text: str) -> str:
    """``text`` inside a markdown table cell (its pipes escaped)."""
    return text.replace("|", "\\|")


def derived_lines(results: dict[str, Any]) -> list[str]:
    """What the rows say together: the backtest, the cost per event of the drift detector
    and of one challenger, micro-batching and parallelism against their base rows."""
    rows = {r["variant"]: r for r in results["runs"] if "error" not in r}

    def eps(name: str) -> float | None:
        row = rows.get(name)
        return row["stratiflow"]["steady_eps"] if row else None

    out: list[str] = []
    for row in rows.values():
        backtest = row.get("backtest")
        if not backtest:
            continue
        if "error" in backtest:
            out.append(f"- Backtest ({row['variant']}): failed: {backtest['error']}")
            continue
        out.append(
            f"- Backtest (`stratiflow backtest` on the same events file, {row['variant']}): "
            f"{backtest['steady_eps']:.0f} ev/s steady = {backtest['vs_bare_river']:.2f}x bare "
            f"River, start-up {backtest['startup_s']} s, peak RSS {backtest['peak_rss_mb']:.0f} "
            f"MB, largest P(true) difference from bare River "
            f"{backtest['max_p_true_difference']:.1e}."
        )
    core = results.get("core_costs")
    if core:
        per_event = core["us_per_event"]
        out.append(
            "- Cost per event in the model step itself (`--core-costs`: `handle` over the "
            f"events in memory, fastest of 5 turns each): base {per_event['base']:.1f} µs; "
            + "; ".join(
                f"{name} {cost:+.1f} µs" for name, cost in core["cost_us_per_event"].items()
            )
            + "."
        )
    base = eps("base")
    for name in ("drift detector", "one challenger"):
        with_it = eps(name)
        if base and with_it:
            cost = 1e6 / with_it - 1e6 / base
            out.append(
                f"- {name}: {with_it:.0f} ev/s against {base:.0f} without it: "
                f"{cost:+.1f} µs per event."
            )
    for name in ("micro-batch-32", "micro-batch-256"):
        batched = eps(name)
        if base and batched:
            out.append(f"- {name}: {batched / base:.2f}x the per-sample job ({batched:.0f} ev/s).")
    p1, p2 = eps("2 keys p1"), eps("2 keys p2")
    if p1 and p2:
        cpu = rows["2 keys p2"]["stratiflow"].get("python_worker_cpu_s")
        out.append(
            f"- Parallelism 2 with two keys: {p2 / p1:.2f}x parallelism 1 ({p2:.0f} vs "
            f"{p1:.0f} ev/s; Python workers' CPU s {cpu}, JVM "
            f"{rows['2 keys p2']['stratiflow'].get('cpu_s', {}).get('jvm')})."
        )
    return ["", *out] if out else []


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{results['events']} events per run, {results['machine']['cpus']} CPUs, "
        f"{results['started_at']}. Steady events/s; ratios are within this run.",
        "",
        "| variant | bare River | Kafka loop | stratiflow | x bare | x loop | start-up s "
        "| peak RSS MB | complete |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["runs"]:
        if "error" in row:
            why = row["error"].split("] ", 1)[-1].rstrip(":")  # drop the command line
            lines.append(f"| {row['variant']} | failed: {why} | | | | | | | |")
            continue
        job, loop = row["stratiflow"], row["kafka_loop"] or {}
        lines.append(
            f"| {row['variant']} | {row['bare_river']['eps']:.0f} | "
            f"{loop.get('steady_eps', 0):.0f} | {job['steady_eps']:.0f} | "
            f"{row['vs_bare_river']:.2f} | {row['vs_kafka_loop'] or '-'} | "
            f"{job['startup_s']} | {job['peak_rss_mb']:.0f} | {row['complete']} |"
        )
    lines += peers_table(results)
    lines += derived_lines(results)
    latency_runs = results.get("latency_runs") or (
        [results["latency"]] if "latency" in results else []
    )
    if latency_runs:
        lines.append("")
    sustainable = results.get("sustainable")
    if sustainable:
        probes = ", ".join(
            f"{p['rate']:.0f} {'kept up' if p['keeps_up'] else 'fell behind'}"
            for p in sustainable["probes"]
        )
        lines.append(
            f"- Sustainable rate with a live producer: {sustainable['eps']:.0f} ev/s "
            f"(bisection, {results['latency_seconds']:.0f} s per probe: {probes})."
        )
    for lat in latency_runs:
        of = {"sustainable": "the sustainable rate"}.get(lat.get("of", ""), "the base throughput")
        lines += [
            f"- Latency ({lat['variant']}, produced at {lat['rate']:.0f} ev/s = "
            f"{lat['share']:.0%} of {of} for {lat['seconds']:.0f} s): "
            f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms "
            + (
                f"after {lat['warmup_seconds']:.0f} s at the rate to warm up "
                f"(during it: p50 {lat['warmup_p50_ms']} / p99 {lat['warmup_p99_ms']} ms) "
                if lat.get("warmup_seconds")
                else ""
            )
            + f"({lat['answered']}/{lat['sent']} answered"
            + (f"; producer {lat['producer_client']}" if "producer_client" in lat else "")
            + ("" if lat.get("keeps_up", True) else "; fell behind")
            + ").",
        ]
    return "\n".join(lines)


def write_readme(results: dict[str, Any]) -> None:
    text = PAGE.read_text()
    if BEGIN not in text or END not in text:
        return
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(f"{head}{BEGIN}\n{table(results)}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--variants", nargs="*", help="names of the variants to run (default all)")
    parser.add_argument("--port", type=int, default=19392, help="the benchmark broker's port")
    parser.add_argument("--instance", default=BROKER_INSTANCE, help="the benchmark broker's name")
    parser.add_argument("--work", default=str(ROOT / ".stratiflow" / "bench"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-kafka-loop", action="store_true")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also measure River's progressive_val_score, a confluent-kafka loop, and Quix "
        "Streams and Bytewax + River (each in a venv of its own under --work, installed from "
        "PyPI the first time), per stream, model and keys",
    )
    parser.add_argument(
        "--no-framework-peers",
        action="store_true",
        help="with --peers, skip Quix Streams and Bytewax (no venvs are made)",
    )
    parser.add_argument(
        "--core-costs",
        action="store_true",
        help="also time the drift detector and one challenger in the model step itself",
    )
    parser.add_argument(
        "--backtest",
        action="store_true",
        help="also run `stratiflow backtest` on the first variant's events file",
    )
    parser.add_argument("--latency", action="store_true", help="also run the latency test")
    parser.add_argument(
        "--latency-share",
        type=float,
        nargs="+",
        default=[0.5],
        help="produce at these shares of the base variant's throughput (default 0.5)",
    )
    parser.add_argument(
        "--latency-low",
        action="store_true",
        help="also measure latency with the low-latency settings (LOW_LATENCY)",
    )
    parser.add_argument(
        "--latency-sustainable",
        action="store_true",
        help="first find the highest rate the job keeps up with while events are produced "
        "live (bisection), and take the latency shares of that rate, not of the drain rate",
    )
    parser.add_argument(
        "--latency-rate",
        type=float,
        nargs="+",
        default=[],
        metavar="EV_PER_S",
        help="produce at these rates (events/s) instead of at shares of a reference rate",
    )
    parser.add_argument(
        "--load-client",
        choices=["confluent-kafka", "kafka-python"],
        default="confluent-kafka",
        help="the latency runs' producer (confluent-kafka falls back to kafka-python "
        "when it is not installed)",
    )
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument(
        "--latency-warmup",
        type=float,
        default=10.0,
        help="seconds produced at the rate before measuring (reported apart)",
    )
    parser.add_argument(
        "--readme", action="store_true", help="write the table in docs/performance.md"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="PATH=VALUE", help="config for every run"
    )
    parser.add_argument(
        "--run-timeout", type=float, default=900, help="seconds one stratiflow run may take"
    )
    args = parser.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "bare":
            worker_bare(Path(rest[0]), rest[1], int(rest[2]), Path(rest[3]))
        elif kind == "core-costs":
            worker_core_costs(Path(rest[0]), rest[1], int(rest[2]), Path(rest[3]))
        elif kind == "pvs":
            worker_progressive_val_score(Path(rest[0]), rest[1], Path(rest[2]))
        elif kind == "confluent-loop":
            worker_confluent_loop(rest[0], rest[1], int(rest[2]), rest[3], rest[4], Path(rest[5]))
        else:
            worker_kafka_loop(rest[0], rest[1], int(rest[2]), rest[3], rest[4], Path(rest[5]))
        return 0
    began = time.monotonic()
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    if args.readme:
        write_readme(results)
    print(
        f"bench: {len(results['runs'])} variants of {args.events} events in "
        f"{_minutes(time.monotonic() - began)}; results in {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
