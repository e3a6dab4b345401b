import textwrap

import pytest

from stratiflow.config import ConfigError, load_config, parse_duration_ms, redact, with_overrides

ISSUE_YAML = """
model:                      # River estimators by module path under `river.`, applied as a pipeline
  - preprocessing.StandardScaler: {}
  - linear_model.LogisticRegression: {l2: 0.0}
sampling: {strategy: none}
metrics: {report_every: 500}
"""


def test_issue_yaml_is_accepted(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(ISSUE_YAML)
    cfg = load_config(path)
    assert [s.path for s in cfg.model] == [
        "preprocessing.StandardScaler",
        "linear_model.LogisticRegression",
    ]
    assert cfg.model[1].params == {"l2": 0.0}
    assert cfg.metrics.report_every == 500 and cfg.sampling.strategy == "none"
    assert cfg.topics.events == "events" and cfg.topics.dead_letters == "dead-letters"


def test_example_config_is_valid():
    cfg = load_config("examples/job.yaml", environ={})
    assert cfg.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert cfg.job.checkpoint_interval_ms == 10_000


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"model": [{"linear_model.NoSuchModel": {}}]}, "model[0].linear_model.NoSuchModel"),
        ({"model": [{"nosuchmodule.X": {}}]}, "model[0].nosuchmodule.X"),
        (
            {"model": [{"linear_model.LogisticRegression": {"l3": 1}}]},
            "model[0].linear_model.LogisticRegression.l3",
        ),
        ({"model": [{"preprocessing.StandardScaler": {}}]}, "model[0]"),
        ({"model": []}, "model"),
        ({"topics": {"predictions": ""}}, "topics.predictions"),
        ({"topics": {"events": None}}, "topics.events"),
        ({"topics": {"metrics": "has space"}}, "topics.metrics"),
        ({"topics": {"evnts": "x"}}, "topics.evnts"),
        ({"metrics": {"report_every": 0}}, "metrics.report_every"),
        ({"metrics": {"report_every": "often"}}, "metrics.report_every"),
        ({"sampling": {"strategy": "magic"}}, "sampling.strategy"),
        ({"job": {"parallelism": 0}}, "job.parallelism"),
        ({"job": {"python_execution_mode": "fibers"}}, "job.python_execution_mode"),
        ({"job": {"checkpoint_interval_ms": "soon"}}, "job.checkpoint_interval_ms"),
        ({"kafka": {"properties": "security.protocol=SSL"}}, "kafka.properties"),
        ({"job": {"flink": ["python.fn-execution.bundle.size=10"]}}, "job.flink"),
        ({"job": {"prometheus_port": 70000}}, "job.prometheus_port"),
        ({"job": {"prometheus_port": "9249"}}, "job.prometheus_port"),
        ({"job": {"gauge_keys": -1}}, "job.gauge_keys"),
        ({"kafak": {}}, "kafak"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_config_names_the_field(raw, field):
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert info.value.path == field
    assert str(info.value).startswith(field + ":")


def test_bad_nested_parameter_names_the_full_path():
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "model": [
                    {"linear_model.LogisticRegression": {"optimizer": {"optim.SGD": {"speed": 1}}}}
                ]
            }
        )
    assert info.value.path == "model[0].linear_model.LogisticRegression.optimizer.optim.SGD.speed"
    assert "lr" in str(info.value)  # lists what is accepted


def test_nested_estimator_parameter():
    cfg = load_config(
        {"model": [{"linear_model.LogisticRegression": {"optimizer": {"optim.SGD": {"lr": 0.05}}}}]}
    )
    from stratiflow.config.model import build_model

    model = build_model(cfg.model)
    assert type(model.optimizer).__name__ == "SGD" and model.optimizer.learning_rate == 0.05


def test_env_expansion_and_redaction(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        textwrap.dedent("""
        kafka:
          bootstrap_servers: ${BROKERS}
          properties:
            security.protocol: SASL_SSL
            sasl.mechanism: SCRAM-SHA-512
            sasl.jaas.config: ${JAAS}
            ssl.truststore.location: ${CA:-/etc/ca.pem}
    """)
    )
    cfg = load_config(path, environ={"BROKERS": "b1:9093", "JAAS": "secret-stuff"})
    assert cfg.kafka.bootstrap_servers == "b1:9093"
    assert cfg.kafka.properties["sasl.jaas.config"] == "secret-stuff"
    assert cfg.kafka.properties["ssl.truststore.location"] == "/etc/ca.pem"
    shown = redact(cfg.kafka.properties)
    assert shown["sasl.jaas.config"] == "***" and "secret" not in str(shown)
    assert shown["security.protocol"] == "SASL_SSL" and shown["sasl.mechanism"] == "SCRAM-SHA-512"
    with pytest.raises(ConfigError, match="JAAS"):
        load_config(path, environ={"BROKERS": "b"})


def test_overrides_and_round_trip():
    cfg = load_config(
        None, {"metrics.report_every": 7, "kafka.properties.security.protocol": "SSL"}
    )
    assert cfg.metrics.report_every == 7
    assert cfg.kafka.properties == {"security.protocol": "SSL"}
    again = with_overrides(cfg, {"job.parallelism": 2})
    assert again.job.parallelism == 2 and again.metrics.report_every == 7
    assert load_config(cfg.to_dict()) == cfg


def test_flink_options_pass_through_as_strings():
    cfg = load_config(
        {"job": {"flink": {"python.fn-execution.bundle.time": 50, "python.metric.enabled": False}}},
        {"job.flink.python.fn-execution.bundle.size": 1000},
    )
    assert cfg.job.flink == {
        "python.fn-execution.bundle.time": "50",
        "python.metric.enabled": "false",
        "python.fn-execution.bundle.size": "1000",
    }
    assert load_config(cfg.to_dict()) == cfg


def test_durations():
    assert [parse_duration_ms(v, "x") for v in (5, "5", "5ms", "2s", "1m", "1h")] == [
        5,
        5,
        5,
        2000,
        60_000,
        3_600_000,
    ]
    with pytest.raises(ConfigError):
        parse_duration_ms("-1s", "x")
