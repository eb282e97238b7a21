"""Where optimize's runs go: the name of their experiment (the MLflow side is in test_optimizer.py)."""

from __future__ import annotations

from lockgate.optimize.experiment import optimize_experiment_name


def test_optimize_runs_sit_next_to_the_training_experiment() -> None:
    assert optimize_experiment_name("lockgate") == "lockgate-optimize"
    assert optimize_experiment_name("churn") == "churn-optimize"
    # a version that optimize made (quantizing an ONNX export): its run is already there
    assert optimize_experiment_name("churn-optimize") == "churn-optimize"
