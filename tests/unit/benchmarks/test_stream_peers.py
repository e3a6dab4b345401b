"""The peers' own model building and per-event step (benchmarks/stream_peers.py runs in the
Quix Streams and Bytewax venvs, without stratiflow): same models and probabilities as the job's."""

from __future__ import annotations

import json

from benchmarks.bench import MODELS, generate
from benchmarks.stream_peers import Tally, build_model
from stratiflow.config.model import build_model as stratiflow_build_model


def test_the_peers_build_the_bench_models_as_stratiflow_does():
    sgd = {"linear_model.LogisticRegression": {"optimizer": {"optim.SGD": {"lr": 0.05}}}}
    for spec in [*MODELS.values(), [sgd]]:
        # River's repr shows every parameter, nested estimators' included.
        assert repr(build_model(spec)) == repr(stratiflow_build_model(_steps(spec)))


def test_a_peer_step_predicts_then_learns_like_bare_river():
    events = generate("agrawal", 300, keys=1)
    peer, reference = build_model(MODELS["lr"]), build_model(MODELS["lr"])
    tally = Tally()
    for event in events:
        record = tally.step(peer, event)
        expected = reference.predict_proba_one(event["features"])
        reference.learn_one(event["features"], event["label"])
        assert tally.p_true[event["id"]] == expected.get(True, 0.0)
        # The prediction record is JSON as the job writes it (class keys as JSON text).
        assert json.loads(json.dumps(record))["proba"] == {
            json.dumps(k): p for k, p in expected.items()
        }
    result = tally.result(1.0, "test", "memory")
    assert result["events"] == 300 and len(result["p_true"]) == 300


def _steps(spec):
    from stratiflow.config import ModelStep

    return tuple(ModelStep(p, s) for step in spec for p, s in step.items())
