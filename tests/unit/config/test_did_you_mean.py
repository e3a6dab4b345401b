"""A misspelt estimator, detector, metric or config key: the error says what was meant."""

from __future__ import annotations

import pytest

from stratiflow.config import ConfigError, load_cli_config, load_config


def error_of(raw: dict) -> str:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    return str(caught.value)


@pytest.mark.parametrize(
    ("step", "meant"),
    [
        ("linear_model.LogisticRegresion", "linear_model.LogisticRegression"),
        ("linear_model.logisticregression", "linear_model.LogisticRegression"),
        ("linear_modle.LogisticRegression", "linear_model.LogisticRegression"),
        # the class exists, in another module
        ("linear_model.HoeffdingTreeClassifier", "tree.HoeffdingTreeClassifier"),
        ("naive_bayes.GausianNB", "naive_bayes.GaussianNB"),
    ],
)
def test_a_misspelt_estimator(step: str, meant: str) -> None:
    message = error_of({"model": ["preprocessing.StandardScaler", step]})
    assert message.startswith(f"model[1].{step}: ")
    assert message.endswith(f"; did you mean {meant}?")


def test_an_estimator_nothing_is_close_to_gets_no_guess() -> None:
    message = error_of({"model": ["linear_model.Zzzqqx"]})
    assert message == "model[0].linear_model.Zzzqqx: river.linear_model has no estimator 'Zzzqqx'"


def test_a_misspelt_module_alone() -> None:
    message = error_of({"model": ["linear_modle.Zzzqqx"]})
    assert message.endswith("river has no module 'linear_modle'; did you mean linear_model?")


def test_a_misspelt_parameter() -> None:
    message = error_of({"model": [{"linear_model.LogisticRegression": {"intercept_lrr": 0.1}}]})
    assert message.startswith("model[0].linear_model.LogisticRegression.intercept_lrr: unknown")
    assert message.endswith("; did you mean intercept_lr?")


@pytest.mark.parametrize(
    ("detector", "meant"), [("drift.ADWN", "drift.ADWIN"), ("drift.binary.DMM", "drift.binary.DDM")]
)
def test_a_misspelt_detector(detector: str, meant: str) -> None:
    message = error_of({"drift": {"detector": detector}})
    assert message.startswith(f"drift.detector.{detector}: ")
    assert message.endswith(f"; did you mean {meant}?")


def test_a_misspelt_metric_or_option() -> None:
    assert error_of({"selection": {"metric": "macro-f1"}}).endswith("; did you mean macro_f1?")
    assert error_of({"selection": {"metric": "acuracy"}}) == (
        "selection.metric: 'acuracy' is not one of: accuracy, balanced_accuracy, macro_f1, "
        "log_loss; did you mean accuracy?"
    )
    assert error_of({"sampling": {"strategy": "balance"}}).endswith("; did you mean balanced?")
    assert "did you mean" not in error_of({"sampling": {"strategy": "xyzzy"}})


def test_misspelt_config_keys() -> None:
    message = error_of({"modle": ["linear_model.LogisticRegression"]})
    assert message.startswith("modle: unknown field (expected one of: job, kafka, topics, model")
    assert message.endswith("; did you mean model?")
    assert error_of({"metrics": {"report_evry": 5}}).endswith(
        "; did you mean metrics.report_every?"
    )
    with pytest.raises(ConfigError, match=r"did you mean kafka\.bootstrap_servers\?$"):
        load_cli_config(None, ["kafka.bootstrap_server=127.0.0.1:9092"])


def test_set_into_the_model_list_says_how() -> None:
    with pytest.raises(ConfigError) as caught:
        load_cli_config("examples/job.yaml", ["model.estimater=linear_model.Perceptron"])
    assert str(caught.value) == (
        "model.estimater: model is a list, not a section: set it whole, e.g. --set 'model=[...]'"
    )
    with pytest.raises(ConfigError, match=r"--set 'model=\[linear_model.LogisticRegression\]'"):
        load_cli_config(None, ["model.estimator=linear_model.Perceptron"])
