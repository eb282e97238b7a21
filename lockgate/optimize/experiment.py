"""Where optimize's runs go: an experiment of their own, next to the parent's training experiment.

A candidate's run holds a trade-off (latency, size, quality measured against its parent), not a
training run; among the training runs it would read as one, with an accuracy measured on other rows.
So the runs of ``lockgate optimize`` go to ``<training experiment>-optimize`` (``lockgate-optimize``
for the default experiment), tagged ``lockgate.purpose = optimize``, which ``lockgate runs list``
leaves out unless asked for it by name.
"""

from __future__ import annotations

from lockgate.tracking.connection import PURPOSE_TAG, Connection
from lockgate.tracking.registry import RegisteredVersion

__all__ = ["OPTIMIZE_PURPOSE", "OPTIMIZE_SUFFIX", "optimize_experiment", "optimize_experiment_name"]

OPTIMIZE_SUFFIX = "-optimize"
OPTIMIZE_PURPOSE = "optimize"


def optimize_experiment_name(training_experiment: str) -> str:
    """``churn`` -> ``churn-optimize``; a version made by optimize (its run already in such an
    experiment) keeps that experiment rather than growing ``-optimize-optimize``."""
    if training_experiment.endswith(OPTIMIZE_SUFFIX):
        return training_experiment
    return training_experiment + OPTIMIZE_SUFFIX


def _training_experiment(conn: Connection, version: RegisteredVersion) -> str:
    """The experiment of the run that made ``version``; the configured one when it is unknown."""
    from mlflow.exceptions import MlflowException

    if version.run_id:
        try:
            run = conn.client.get_run(version.run_id)
            return str(conn.client.get_experiment(run.info.experiment_id).name)
        except MlflowException:
            pass  # a version registered from a run that is gone
    return conn.settings.experiment


def optimize_experiment(conn: Connection, version: RegisteredVersion) -> str:
    """The name of the experiment the optimize runs of ``version`` go to, created and tagged once."""
    name = optimize_experiment_name(_training_experiment(conn, version))
    experiment_id = conn.experiment_id(name)
    if conn.client.get_experiment(experiment_id).tags.get(PURPOSE_TAG) != OPTIMIZE_PURPOSE:
        conn.client.set_experiment_tag(experiment_id, PURPOSE_TAG, OPTIMIZE_PURPOSE)
    return name
