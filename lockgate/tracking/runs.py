"""Finding, comparing and reproducing tracked runs.

The comparison logic is pure (plain dicts in, plain rows out) so it is tested without MLflow; the
functions that take a :class:`Connection` fetch from MLflow and hand over.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.errors import NotFound, StoreUnreachable, UserError
from lockgate.tracking.connection import DATASETS_EXPERIMENT, PURPOSE_TAG, Connection, server_errors
from lockgate.tracking.refs import dataset_label
from lockgate.tracking.spill import is_transient

if TYPE_CHECKING:
    from mlflow.entities import Run

__all__ = [
    "ComparisonRow",
    "RunDiff",
    "RunSummary",
    "compare_rows",
    "diff_runs",
    "get_run",
    "is_lower_better",
    "list_runs",
    "plot_metrics",
    "summarize",
]

_LOWER_IS_BETTER = re.compile(
    r"(loss|error|err|rmse|mse|mae|mape|latency|time|duration|size|perplexity)", re.I
)
_RUN_ID = re.compile(r"^[0-9a-f]{6,32}$")


def is_lower_better(metric: str) -> bool:
    """Guess a metric's direction from its name: losses, errors, latencies and sizes go down."""
    return bool(_LOWER_IS_BETTER.search(metric))


@dataclass(frozen=True)
class RunSummary:
    """The parts of a run the tables show."""

    run_id: str
    name: str
    experiment_id: str
    status: str
    start_ms: int
    end_ms: int | None
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.run_id[:8]

    @property
    def duration_s(self) -> float | None:
        return (self.end_ms - self.start_ms) / 1000 if self.end_ms else None

    @property
    def datasets(self) -> list[dict[str, Any]]:
        try:
            return list(json.loads(self.tags.get("lockgate.datasets", "[]")))
        except json.JSONDecodeError:
            return []


def summarize(run: Run) -> RunSummary:
    return RunSummary(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        experiment_id=str(run.info.experiment_id),
        status=run.info.status,
        start_ms=int(run.info.start_time or 0),
        end_ms=int(run.info.end_time) if run.info.end_time else None,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
    )


# -- pure comparison -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ComparisonRow:
    """One parameter or metric across runs; ``best`` holds the indexes of the best runs (metrics)."""

    kind: str  # "param" or "metric"
    key: str
    values: tuple[Any, ...]
    is_changed: bool
    best: tuple[int, ...] = ()


def compare_rows(runs: Sequence[RunSummary], *, only_changed: bool = False) -> list[ComparisonRow]:
    """Rows of params then metrics across ``runs``, with differences and the best value marked."""
    rows: list[ComparisonRow] = []
    for key in sorted({k for r in runs for k in r.params}):
        values = tuple(r.params.get(key) for r in runs)
        rows.append(ComparisonRow("param", key, values, len(set(values)) > 1))
    for key in sorted({k for r in runs for k in r.metrics}):
        values_m = tuple(r.metrics.get(key) for r in runs)
        present = [(i, v) for i, v in enumerate(values_m) if v is not None]
        best: tuple[int, ...] = ()
        if len(present) > 1:
            target = (min if is_lower_better(key) else max)(v for _, v in present)
            best = tuple(i for i, v in present if v == target)
        is_changed = len(set(values_m)) > 1
        rows.append(ComparisonRow("metric", key, values_m, is_changed, best if is_changed else ()))
    if only_changed:
        rows = [r for r in rows if r.is_changed]
    return rows


@dataclass(frozen=True)
class RunDiff:
    """What differs between two runs, by section."""

    a: str
    b: str
    params: dict[str, tuple[Any, Any]]
    metrics: dict[str, tuple[float | None, float | None]]
    code: dict[str, tuple[Any, Any]]
    environment: dict[str, tuple[Any, Any]]
    data: dict[str, tuple[Any, Any]]
    packages_added: tuple[str, ...] = ()
    packages_removed: tuple[str, ...] = ()

    @property
    def is_identical(self) -> bool:
        return not (self.params or self.metrics or self.code or self.environment or self.data)


def _changed(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


_CODE_TAGS = (
    "lockgate.git.commit",
    "lockgate.git.branch",
    "lockgate.git.dirty",
    "lockgate.git.diff_sha256",
)
_ENV_TAGS = ("lockgate.python", "lockgate.packages_sha256", "lockgate.host", "lockgate.platform")


def diff_runs(
    a: RunSummary,
    b: RunSummary,
    packages_a: Sequence[str] = (),
    packages_b: Sequence[str] = (),
) -> RunDiff:
    """Params, metrics, code, environment and data that differ between two runs."""

    def pick(run: RunSummary, keys: tuple[str, ...]) -> dict[str, str]:
        return {k.split(".")[-1]: run.tags[k] for k in keys if k in run.tags}

    def data_of(run: RunSummary) -> dict[str, str]:
        return {
            f"{d.get('name')} ({d.get('context', 'train')})": (
                f"{dataset_label(d)} {str(d.get('digest'))[:12]}"
            )
            for d in run.datasets
        }

    return RunDiff(
        a=a.run_id,
        b=b.run_id,
        params=_changed(a.params, b.params),
        metrics=_changed(a.metrics, b.metrics),
        code=_changed(pick(a, _CODE_TAGS), pick(b, _CODE_TAGS)),
        environment=_changed(pick(a, _ENV_TAGS), pick(b, _ENV_TAGS)),
        data=_changed(data_of(a), data_of(b)),
        packages_added=tuple(sorted(set(packages_b) - set(packages_a))),
        packages_removed=tuple(sorted(set(packages_a) - set(packages_b))),
    )


# -- MLflow shell --------------------------------------------------------------------------------
def _experiment_ids(conn: Connection, *, is_training_only: bool = True) -> list[str]:
    """The experiments of runs, never the datasets'; with ``is_training_only`` not those tagged with
    another purpose either (optimize's)."""
    return [
        e.experiment_id
        for e in conn.client.search_experiments(max_results=1000)
        if e.name != DATASETS_EXPERIMENT and not (is_training_only and e.tags.get(PURPOSE_TAG))
    ]


def get_run(conn: Connection, ref: str) -> Run:
    """A run by full id, or by a unique prefix of at least 6 characters."""
    from mlflow.exceptions import MlflowException

    ref = ref.strip()
    if not _RUN_ID.match(ref):
        raise UserError(
            f"'{ref}' is not a run id",
            hint="run ids are hexadecimal (give at least 6 characters); list them with `lockgate runs list`",
        )
    if len(ref) == 32:
        try:
            return conn.client.get_run(ref)
        except MlflowException as exc:
            raise NotFound(f"run '{ref}' not found", hint="list runs with `lockgate runs list`") from exc
    matches = [
        r
        for r in conn.client.search_runs(_experiment_ids(conn, is_training_only=False), max_results=50_000)
        if r.info.run_id.startswith(ref)
    ]
    if not matches:
        raise NotFound(f"no run id starts with '{ref}'", hint="list runs with `lockgate runs list`")
    if len(matches) > 1:
        raise UserError(
            f"'{ref}' matches {len(matches)} runs",
            hint="give more characters of the run id",
        )
    return matches[0]


def list_runs(conn: Connection, *, experiment: str | None = None, limit: int = 20) -> list[RunSummary]:
    """The most recent runs, newest first: every experiment of training runs (not the datasets', not
    optimize's) unless one is named."""
    if limit < 1:
        raise UserError(f"--limit {limit} must be 1 or more", hint="for example --limit 20")
    if experiment is not None:
        found = conn.client.get_experiment_by_name(experiment)
        if found is None:
            names = sorted(e.name for e in conn.client.search_experiments(max_results=1000))
            raise NotFound(
                f"experiment '{experiment}' does not exist",
                hint=f"experiments: {', '.join(names)}" if names else "no experiments yet",
            )
        ids = [found.experiment_id]
    else:
        ids = _experiment_ids(conn)
    if not ids:
        return []
    runs = conn.client.search_runs(ids, max_results=limit, order_by=["attributes.start_time DESC"])
    return [summarize(r) for r in runs]


def load_packages(conn: Connection, run_id: str) -> list[str]:
    """The run's ``environment/requirements.txt`` lines; [] for a run tracked without lockgate.

    Only a missing file means "no requirements": a server that cannot be reached is a
    :class:`StoreUnreachable` (exit code 3), never an empty list.
    """
    import tempfile

    import mlflow.artifacts

    artifact = "environment/requirements.txt"
    uri = conn.settings.tracking_uri
    try:
        with server_errors(conn, f"read the artifacts of run {run_id}"):
            listed = {f.path for f in conn.client.list_artifacts(run_id, "environment")}
            if artifact not in listed:
                return []
            with tempfile.TemporaryDirectory() as tmp:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=artifact, dst_path=tmp
                )
                return [line for line in Path(local).read_text().splitlines() if line.strip()]
    except Exception as exc:
        if not (isinstance(exc, OSError) or is_transient(exc)):
            raise
        raise StoreUnreachable(
            f"the MLflow tracking server at '{uri}' could not be reached to read run {run_id}'s "
            f"environment ({type(exc).__name__})",
            hint="start the server or fix MLFLOW_TRACKING_URI, then run the command again",
        ) from None


def plot_metrics(
    conn: Connection, runs: Sequence[RunSummary], path: Path, metrics: Sequence[str] = ()
) -> Path:
    """Write a PNG with one panel per metric: each run's history against its step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(metrics) or sorted({k for r in runs for k in r.metrics})
    if not keys:
        raise UserError("the runs have no metrics to plot", hint="log metrics with run.log_metric")
    if path.suffix.lower() != ".png":
        raise UserError(f"plot file '{path}' must end in .png", hint="for example --plot runs.png")
    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for run in runs:
            history = sorted(
                conn.client.get_metric_history(run.run_id, key), key=lambda m: (m.step, m.timestamp)
            )
            if not history:
                continue
            steps = [m.step for m in history]
            values = [m.value for m in history]
            label = f"{run.name or run.short_id} ({run.short_id})"
            if len(history) == 1:
                ax.scatter(steps, values, label=label)
            else:
                ax.plot(steps, values, label=label)
        ax.set_title(key + (" (lower is better)" if is_lower_better(key) else ""))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
