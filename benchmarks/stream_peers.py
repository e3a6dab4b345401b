"""The Python stream processors a user would pick instead of PyFlink, as ``bench.py --peers``
contestants: Quix Streams + River and Bytewax + River, a model per key in each framework's
state.

This script runs inside a virtual environment of its own per framework (``bench.py`` makes
them under its work dir and installs the framework and the main environment's River from
PyPI), so it imports nothing from the repository: only the standard library, River and the
framework. ::

    python stream_peers.py quix|quix-memory|bytewax BOOTSTRAP TOPIC N MODEL_JSON OUT_TOPIC OUT

``MODEL_JSON`` is a bench model spec (a value of ``bench.MODELS``), built the way
``stratiflow.config.model.build_model`` builds it. Every event on ``TOPIC`` (the bench's
JSON, keyed by its model key) is predicted (``predict_proba_one``) and then learnt
(``learn_one``) by its key's model, and the prediction, the JSON of ``bench.loop_step``,
goes to ``OUT_TOPIC``. After ``N`` events ``OUT`` gets ``{"seconds", "eps",
"steady_eps", "p_true": {id: P(true)}, "framework", "state"}``; ``steady_eps`` is
(seen - 1) / (last - first) over the wall-clock times the events were processed at, as
in ``bench.worker_confluent_loop``.

Where the model lives, and what that costs per event:

- ``quix`` — Quix Streams' keyed state (``sdf.apply(..., stateful=True)``, the ``State``
  of the message's key), a RocksDB store per partition. State values go through the
  store's serializer, JSON by default, which a River model is not; the Quix way is
  ``RocksDBOptions(dumps=pickle.dumps, loads=pickle.loads)``. The transaction caches
  *bytes*, so every event pays a ``pickle.loads`` (``state.get``) and a
  ``pickle.dumps`` (``state.set``) of the whole model; each commit (every 5 s) writes
  the latest value of each key to RocksDB and to the store's changelog topic.
- ``quix-memory`` — the same application with the models in a dict in process memory
  (``stateful=False``): no pickling, and no fault tolerance for the models.
- ``bytewax`` — ``op.stateful_map`` on a ``key_on`` stream: Bytewax keeps each key's
  state as the live Python object, so an event costs no serialization; at the end of
  each epoch (10 s by default) the runtime takes a ``copy.deepcopy`` snapshot of each
  changed key's state, which only a recovery store would keep (``run_main`` without a
  ``recovery_config``, as here, writes none).
"""

from __future__ import annotations

import importlib
import json
import pickle
import shutil
import sys
import tempfile
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

# -- the model (what stratiflow.config.model.build_model does, without its checks) ----------


def build_model(spec: list[dict[str, Any]]) -> Any:
    """The River estimator of one step, else a ``compose.Pipeline`` of every step."""
    from river import compose

    estimators = []
    for step in spec:
        ((path, params),) = step.items()
        estimators.append(_instantiate(path, params or {}))
    return estimators[0] if len(estimators) == 1 else compose.Pipeline(*estimators)


def _instantiate(path: str, params: dict[str, Any]) -> Any:
    module_name, _, class_name = path.rpartition(".")
    cls = getattr(importlib.import_module(f"river.{module_name}"), class_name)
    return cls(**{name: _param_value(value) for name, value in params.items()})


def _param_value(value: Any) -> Any:
    # A parameter may itself be a River object: {"optim.SGD": {"lr": 0.05}}.
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if (
            isinstance(key, str)
            and "." in key
            and key[:1].islower()
            and (inner is None or isinstance(inner, dict))
        ):
            return _instantiate(key, inner or {})
    return value


# -- one event ------------------------------------------------------------------------------


class Tally:
    """P(true) per event id and the wall clock of the first and last event processed."""

    def __init__(self) -> None:
        self.p_true: dict[str, float] = {}
        self.first = self.last = 0.0

    def step(self, model: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Predict, then learn, one event; its prediction (``bench.loop_step``'s fields)."""
        x = event["features"]
        proba = model.predict_proba_one(x)
        model.learn_one(x, event["label"])
        now = time.time()
        self.p_true[event["id"]] = proba.get(True, 0.0)
        self.first = self.first or now
        self.last = now
        return {
            "id": event["id"],
            "ts": event["ts"],
            "key": event["key"],
            "y_pred": max(proba, key=proba.get) if proba else None,
            # str keys, as json.dumps writes them ({True: p} -> {"true": p}): Quix
            # Streams' serializer (orjson) takes str keys only.
            "proba": {json.dumps(k) if not isinstance(k, str) else k: p for k, p in proba.items()},
            "emitted_at": int(now * 1000),
        }

    def result(self, seconds: float, framework: str, state: str) -> dict[str, Any]:
        seen = len(self.p_true)
        return {
            "seconds": seconds,
            "eps": seen / seconds,
            "steady_eps": (seen - 1) / (self.last - self.first) if seen > 1 else 0.0,
            "events": seen,
            "p_true": self.p_true,
            "framework": framework,
            "state": state,
        }


def _version(dist: str) -> str:
    return f"{dist} {metadata.version(dist)}"


# -- Quix Streams ---------------------------------------------------------------------------


def run_quix(
    bootstrap: str, topic: str, n: int, spec: list[dict[str, Any]], out_topic: str, in_state: bool
) -> dict[str, Any]:
    """A Quix Streams application: the events topic → a model per message key → the
    predictions topic, stopped after ``n`` outputs."""
    from quixstreams import Application
    from quixstreams.state.rocksdb import RocksDBOptions

    state_dir = Path(tempfile.mkdtemp(prefix="quix-state-"))
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        # State values are JSON by default; a River model is stored pickled.
        rocksdb_options=RocksDBOptions(dumps=pickle.dumps, loads=pickle.loads),
        loglevel="WARNING",
    )
    events = app.topic(topic, value_deserializer="json")
    predictions = app.topic(out_topic, value_serializer="json")
    tally = Tally()
    sdf = app.dataframe(events)
    if in_state:

        def predict_learn(event: dict[str, Any], state: Any) -> dict[str, Any]:
            # The State is the message key's: bench.produce keys each event by its model key.
            model = state.get("model")
            if model is None:
                model = build_model(spec)
            prediction = tally.step(model, event)
            state.set("model", model)
            return prediction

        sdf = sdf.apply(predict_learn, stateful=True)
    else:
        models: dict[str, Any] = {}

        def predict_learn_memory(event: dict[str, Any]) -> dict[str, Any]:
            model = models.get(event["key"])
            if model is None:
                model = models[event["key"]] = build_model(spec)
            return tally.step(model, event)

        sdf = sdf.apply(predict_learn_memory)
    sdf.to_topic(predictions)
    start = time.perf_counter()
    try:
        # count: stop after n outputs; timeout: give up when nothing arrives for 120 s.
        app.run(count=n, timeout=120, collect=False)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    seconds = time.perf_counter() - start
    where = "quix State (RocksDB, pickled)" if in_state else "dict in process memory"
    return tally.result(seconds, _version("quixstreams"), where)


# -- Bytewax --------------------------------------------------------------------------------


def run_bytewax(
    bootstrap: str, topic: str, n: int, spec: list[dict[str, Any]], out_topic: str
) -> dict[str, Any]:
    """A Bytewax dataflow, one worker: KafkaSource (ends at the partitions' end) → parse →
    key_on the model key → stateful_map holding the model → KafkaSink."""
    import bytewax.operators as op
    from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
    from bytewax.dataflow import Dataflow
    from bytewax.testing import run_main
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(out_topic, 1, 1)]).values():
        future.result(30)
    tally = Tally()

    def predict_learn(model: Any, event: dict[str, Any]) -> tuple[Any, bytes]:
        if model is None:
            model = build_model(spec)
        return model, json.dumps(tally.step(model, event)).encode()

    flow = Dataflow("river")
    messages = op.input("events", flow, KafkaSource([bootstrap], [topic], tail=False))
    events = op.map("parse", messages, lambda message: json.loads(message.value))
    keyed = op.key_on("model_key", events, lambda event: event["key"])
    predictions = op.stateful_map("model", keyed, predict_learn)
    out = op.map("to_message", predictions, lambda kv: KafkaSinkMessage(kv[0].encode(), kv[1]))
    op.output("predictions", out, KafkaSink([bootstrap], out_topic))
    start = time.perf_counter()
    run_main(flow)
    seconds = time.perf_counter() - start
    if len(tally.p_true) != n:
        raise RuntimeError(f"bytewax processed {len(tally.p_true)} events, expected {n}")
    return tally.result(seconds, _version("bytewax"), "stateful_map (live object)")


def main(argv: list[str]) -> int:
    if len(argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    kind, bootstrap, topic, n, spec, out_topic, out = argv
    if kind in ("quix", "quix-memory"):
        result = run_quix(bootstrap, topic, int(n), json.loads(spec), out_topic, kind == "quix")
    elif kind == "bytewax":
        result = run_bytewax(bootstrap, topic, int(n), json.loads(spec), out_topic)
    else:
        print(f"unknown framework {kind!r}", file=sys.stderr)
        return 2
    result["river"] = metadata.version("river")
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
