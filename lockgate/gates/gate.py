"""The gate's shell: find the models and data in MLflow, check them, score them, record the verdict.

Nothing here decides anything: it gathers :class:`~lockgate.gates.kinds.GateInputs` (verifying every
artifact and dataset against its recorded digest first) and hands them to the check kinds.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lockgate.errors import IntegrityError, NotFound, UserError, ValidationError
from lockgate.gates.kinds import GateInputs, PredictionFailed, Predictions, TextModel, run_check
from lockgate.gates.policy import HoldoutSpec, Policy
from lockgate.gates.result import CheckResult, GateReport
from lockgate.tracking.connection import Connection, server_errors
from lockgate.tracking.digest import MODEL_DIGEST_EXCLUDES, manifest, model_sha256
from lockgate.tracking.refs import Ref, parse_ref
from lockgate.tracking.registry import RegisteredVersion, get_model_version

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.pyfunc import PyFuncModel

    from lockgate.gates.generation import GenerationOutputs

__all__ = [
    "TAG_KINDS",
    "TAG_POLICY_SHA256",
    "TAG_VERDICT",
    "LoadedModel",
    "download_verified",
    "find_baseline",
    "measure_latency",
    "parse_model_uri",
    "record_report",
    "text_model",
    "validate",
]

TAG_VERDICT = "lockgate.gate.verdict"
TAG_POLICY_SHA256 = "lockgate.gate.policy_sha256"
TAG_REPORT = "lockgate.gate.report"
TAG_KINDS = "lockgate.gate.kinds"
"""The check kinds that ran (not skipped), comma-separated: what the checklist credits the gate with."""


def parse_model_uri(text: str) -> Ref:
    """``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``NAME@VERSION``, ``NAME@ALIAS`` or ``NAME``."""
    if text.startswith("models:/"):
        body = text.removeprefix("models:/").strip("/")
        name, slash, version = body.partition("/")
        if slash:
            if not version.isdigit():
                raise UserError(
                    f"model URI '{text}' names no version number",
                    hint="write models:/NAME/VERSION or models:/NAME@ALIAS",
                )
            return parse_ref(f"{name}@{version}", "model name")
        return parse_ref(body, "model name")
    if "://" in text or text.startswith("runs:/"):
        raise UserError(
            f"'{text}' is not a registered model",
            hint="register the run's model first (`lockgate register RUN --name NAME`), "
            "then validate NAME@VERSION",
        )
    return parse_ref(text, "model name")


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version whose artifact matched its recorded checksum, loaded with pyfunc."""

    version: RegisteredVersion
    model: PyFuncModel
    input_schema: tuple[Mapping[str, Any], ...] | None
    size_bytes: int

    @property
    def input_columns(self) -> list[str] | None:
        if not self.input_schema or any("name" not in spec for spec in self.input_schema):
            return None
        return [str(spec["name"]) for spec in self.input_schema]


def download_verified(version: RegisteredVersion, folder: Path) -> Path:
    """Download ``version`` under ``folder`` and check its SHA-256 against the registry's tag."""
    import mlflow.artifacts

    if not version.artifact_sha256:
        raise IntegrityError(
            f"{version.ref} has no recorded artifact checksum, so it cannot be verified",
            hint="register models with `lockgate register`, which records one",
        )
    dst = folder / f"{version.name}-v{version.version}"
    dst.mkdir(parents=True, exist_ok=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.uri, dst_path=str(dst)))
    digest = model_sha256(local)
    if digest != version.artifact_sha256:
        raise IntegrityError(
            f"the artifact of {version.ref} does not match its checksum: {digest[:12]} downloaded, "
            f"{version.artifact_sha256[:12]} recorded",
            hint="the model files changed after registration; register the model again",
        )
    return local


def load_verified(version: RegisteredVersion, folder: Path) -> LoadedModel:
    """Download ``version``, check its SHA-256 against the registry's tag, and load it with pyfunc."""
    import mlflow.pyfunc

    local = download_verified(version, folder)
    model = mlflow.pyfunc.load_model(str(local))
    schema = model.metadata.get_input_schema()
    size = sum(e.size_bytes for e in manifest(local) if e.path not in MODEL_DIGEST_EXCLUDES)
    return LoadedModel(version, model, tuple(schema.to_dict()) if schema is not None else None, size)


# -- data -----------------------------------------------------------------------------------------
_TABLES = (".csv", ".parquet", ".pq")


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)


def _holdout_file(root: Path, spec: HoldoutSpec) -> Path:
    if root.is_file():
        return root
    tables = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _TABLES)
    if spec.file is not None:
        chosen = root / spec.file
        if chosen in tables:
            return chosen
        raise NotFound(
            f"holdout.file '{spec.file}' is not a table in {spec.dataset}",
            hint=f"tables: {', '.join(str(t.relative_to(root)) for t in tables) or 'none'}",
        )
    if len(tables) == 1:
        return tables[0]
    raise ValidationError(
        f"dataset {spec.dataset} holds {len(tables)} tables; holdout.file must say which to score",
        hint=f"tables: {', '.join(str(t.relative_to(root)) for t in tables) or 'none'}",
    )


def _pick_profile(profiles: Mapping[str, Any], file_name: str) -> Mapping[str, Any] | None:
    tables = {k: v for k, v in profiles.items() if isinstance(v, Mapping) and "columns" in v}
    if len(tables) == 1:
        return next(iter(tables.values()))
    for key, value in tables.items():
        if Path(key).name == file_name:
            return value
    return None


# -- predictions ----------------------------------------------------------------------------------
def _features(model: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
    columns = model.input_columns
    if columns is None:
        return frame
    # Pass only the columns the signature names (MLflow warns once per call about extra ones); a
    # missing column is left for MLflow's schema check to report.
    return frame[[c for c in columns if c in frame.columns]]


def predict(model: LoadedModel, frame: pd.DataFrame, *, task: str, decision_threshold: float) -> Predictions:
    """Labels (or values) and, for binary classifiers, scores of the positive class."""
    from mlflow.exceptions import MlflowException

    features = _features(model, frame)
    try:
        raw_output = model.model.predict(features)
    except (MlflowException, ValueError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PredictionFailed(first[:300]) from exc
    output = np.asarray(getattr(raw_output, "values", raw_output), dtype=np.float64)
    if task == "regression":
        return Predictions(output.reshape(len(frame), -1)[:, 0])
    scores: np.ndarray[Any, np.dtype[np.float64]] | None = None
    if output.ndim == 2 and output.shape[1] == 2:
        scores = output[:, 1]
        labels = (scores >= decision_threshold).astype(np.float64)
    else:
        labels = output.ravel()
        is_fraction = bool(np.all((labels >= 0) & (labels <= 1))) and not np.all(labels == np.round(labels))
        if is_fraction:
            scores, labels = labels, (labels >= decision_threshold).astype(np.float64)
    if scores is None:
        scores = _raw_scores(model, features)
    return Predictions(labels, scores)


def _raw_scores(model: LoadedModel, features: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """Positive-class probabilities from the underlying estimator, when it is a binary classifier."""
    try:
        raw = model.model.get_raw_model()  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - a flavour without a raw model simply has no scores
        return None
    if not hasattr(raw, "predict_proba"):
        return None
    proba = np.asarray(raw.predict_proba(features), dtype=np.float64)
    return proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else None


def text_model(model: LoadedModel) -> TextModel:
    """``model`` as a function of raw texts, for the text and embedding kinds.

    A signature with one named column gets a one-column frame (a scikit-learn pipeline reading
    ``text``); anything else gets the plain list of strings (a sentence-transformers encoder).
    """
    import pandas as pd
    from mlflow.exceptions import MlflowException

    columns = model.input_columns

    def call(texts: Sequence[str]) -> np.ndarray[Any, np.dtype[Any]]:
        data: Any = pd.DataFrame({columns[0]: list(texts)}) if columns and len(columns) == 1 else list(texts)
        try:
            output = model.model.predict(data)
        except (MlflowException, ValueError, TypeError, KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PredictionFailed(first[:300]) from exc
        return np.asarray(getattr(output, "values", output))

    return call


def measure_latency(
    model: LoadedModel,
    frame: pd.DataFrame,
    *,
    requests: int,
    repeats: int,
    warmup: int,
    clock: Callable[[], float] = time.perf_counter,
) -> list[list[float]]:
    """Milliseconds per single-row ``predict`` call: ``repeats`` runs of ``requests`` calls each."""
    features = _features(model, frame)
    rows = [features.iloc[[i % len(features)]] for i in range(max(requests, warmup))]
    for row in rows[:warmup]:
        model.model.predict(row)
    samples = []
    for _ in range(repeats):
        taken = []
        for row in rows[:requests]:
            started = clock()
            model.model.predict(row)
            taken.append((clock() - started) * 1000.0)
        samples.append(taken)
    return samples


# -- the gate -------------------------------------------------------------------------------------
def find_baseline(
    conn: Connection, candidate: RegisteredVersion, against: str | None
) -> tuple[RegisteredVersion | None, str | None]:
    """The baseline to compare with, and how to name it; an alias that is not set yet means none."""
    if against is None or against.lower() == "none":
        return None, None
    if "@" not in against and ":/" not in against:
        ref = Ref(candidate.name, alias=against)
        try:
            return get_model_version(conn, ref), str(ref)
        except NotFound:
            return None, f"{ref} is not set"
    return get_model_version(conn, parse_model_uri(against)), against


def _run_tags(conn: Connection, run_id: str | None) -> dict[str, str]:
    from lockgate.tracking.runs import get_run

    return dict(get_run(conn, run_id).data.tags) if run_id else {}


def _reference_profile(
    conn: Connection, policy: Policy, candidate: RegisteredVersion, file_name: str
) -> tuple[Mapping[str, Any] | None, str | None]:
    from lockgate.tracking.datasets import get_version, load_profiles

    ref = policy.settings.reference
    if ref is None:
        trained = [d for d in candidate.datasets if d.get("context") == "train" and d.get("version")]
        if not trained:
            return None, None
        ref = f"{trained[0]['name']}@{trained[0]['version']}"
    version = get_version(conn, ref)
    return _pick_profile(load_profiles(conn, version), file_name), version.ref


def validate(
    conn: Connection,
    model: str,
    policy: Policy,
    *,
    against: str | None = None,
    data_root: Path | None = None,
    generation: GenerationOutputs | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> GateReport:
    """Run every check of ``policy`` on ``model`` (``NAME@VERSION`` or a ``models:/`` URI).

    ``against`` overrides the policy's baseline (an alias of the same model such as ``champion``, or
    ``NAME@VERSION``; ``none`` for no baseline). ``data_root`` is a folder holding the holdout data
    when it is not where it was recorded (relative to this project). ``generation``: the candidate's
    and the baseline's answers for the ``generation`` check, gathered by the shell that can run
    generative models (:func:`lockgate.llm.gate.validate_generation`, which calls this).
    """
    from lockgate.tracking.datasets import (
        data_root_in_force,
        get_version,
        locate,
        profile_table,
        project_root,
        verify_path,
    )

    started, started_ms = clock(), int(time.time() * 1000)
    settings = policy.settings
    needs = policy.needs
    candidate_version = get_model_version(conn, parse_model_uri(model))
    baseline_version, baseline_ref = find_baseline(
        conn, candidate_version, against if against is not None else settings.against
    )
    fields: dict[str, Any] = {
        "task": settings.task,
        "seed": settings.seed,
        "baseline_ref": baseline_ref,
        "generation": generation,
    }
    with tempfile.TemporaryDirectory(prefix="lockgate-gate-") as tmp:
        loads_model = needs & {"holdout", "signature", "latency", "size", "model"}
        candidate = load_verified(candidate_version, Path(tmp)) if loads_model else None
        baseline = None
        if baseline_version is not None and needs & {"baseline", "signature", "model"}:
            baseline = (
                candidate
                if candidate is not None and baseline_version.ref == candidate_version.ref
                else load_verified(baseline_version, Path(tmp))
            )
        if candidate is not None:
            fields.update(candidate_schema=candidate.input_schema, size_bytes=candidate.size_bytes)
        if baseline is not None:
            fields["baseline_schema"] = baseline.input_schema
        if "model" in needs:
            fields["candidate_model"] = text_model(candidate) if candidate is not None else None
            fields["baseline_model"] = text_model(baseline) if baseline is not None else None
        if "run_tags" in needs:
            fields["run_tags"] = _run_tags(conn, candidate_version.run_id)
        holdout = settings.holdout
        if holdout is not None and needs & {"holdout", "latency", "profiles"}:
            dataset = get_version(conn, holdout.dataset)
            data_path = locate(dataset.source, project_root(), data_root_in_force(data_root))
            verify_path(dataset, data_path)
            path = _holdout_file(data_path, holdout)
            frame = _read_table(path)
            if holdout.target not in frame.columns:
                raise ValidationError(
                    f"holdout.target '{holdout.target}' is not a column of {dataset.ref} ({path.name})",
                    hint=f"columns are {', '.join(map(str, frame.columns))}",
                )
            fields["target"] = holdout.target
            if "profiles" in needs:
                fields["holdout_profile"] = profile_table(path)
                fields["reference_profile"], fields["reference_ref"] = _reference_profile(
                    conn, policy, candidate_version, path.name
                )
            if candidate is not None:
                fields.update(_score(policy, holdout.target, frame, candidate, baseline))
        results: list[CheckResult] = []
        inputs = GateInputs(**fields)
        for kind, kind_settings in policy.checks:
            results.extend(run_check(kind, kind_settings, inputs))
    return GateReport(
        model=candidate_version.ref,
        baseline=baseline_version.ref if baseline_version is not None else baseline_ref,
        policy_sha256=policy.sha256,
        results=tuple(results),
        started_ms=started_ms,
        duration_s=clock() - started,
        seed=settings.seed,
    )


def _score(
    policy: Policy,
    target: str,
    frame: pd.DataFrame,
    candidate: LoadedModel,
    baseline: LoadedModel | None,
) -> dict[str, Any]:
    """Both models' predictions on the holdout and, if budgeted, the candidate's latency."""
    settings = policy.settings
    try:
        truth = np.asarray(frame[target], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"holdout.target '{target}' must hold numbers (0/1 labels for classification)",
            hint="encode the labels as numbers before snapshotting the holdout",
        ) from exc
    features = frame.drop(columns=[target])

    def scored(model: LoadedModel) -> Predictions:
        return predict(model, features, task=settings.task, decision_threshold=settings.decision_threshold)

    out: dict[str, Any] = {"y_true": truth, "frame": frame}
    try:
        out["candidate"] = scored(candidate)
    except PredictionFailed as exc:
        out["candidate_error"] = str(exc)
    if baseline is not None:
        try:
            out["baseline"] = scored(baseline)
        except PredictionFailed as exc:
            out["baseline_ref"] = f"{baseline.version.ref} could not score the holdout: {exc}"
    budgets = {k.name: s for k, s in policy.checks}.get("budgets")
    if budgets is not None and budgets.latency_p95_ms is not None and "candidate" in out:
        out["latency_ms"] = measure_latency(
            candidate, features, requests=budgets.requests, repeats=budgets.repeats, warmup=budgets.warmup
        )
    return out


def record_report(conn: Connection, report: GateReport) -> str | None:
    """Tag the model version with the verdict and policy digest; log the JSON report to its run.

    Returns the report's artifact path in the run (None when the version has no run).
    """
    version = get_model_version(conn, report.model)
    client = conn.client
    name, number = version.name, str(version.version)
    kinds = ",".join(sorted({r.kind for r in report.results if r.kind and not r.is_skipped}))
    # on a team server recording needs EDIT on the model (and on its run's experiment)
    refused_hint = (
        f"ask the model's owner or an admin of the server for EDIT on registered model '{name}', or "
        "pass --no-record to check it without recording the verdict"
    )
    with server_errors(conn, f"record the gate's verdict on registered model '{name}'", refused_hint):
        client.set_model_version_tag(name, number, TAG_VERDICT, report.verdict)
        client.set_model_version_tag(name, number, TAG_POLICY_SHA256, report.policy_sha256)
        client.set_model_version_tag(name, number, TAG_KINDS, kinds)
    if version.run_id is None:
        return None
    artifact = f"gates/validate-{name}-v{number}-{report.started_ms}.json"
    run_hint = (
        "ask the run's owner or an admin of the server for EDIT on the run's experiment, or pass "
        "--no-record to check it without recording the verdict"
    )
    with server_errors(conn, f"log the gate's report to run '{version.run_id}' of {version.ref}", run_hint):
        client.log_dict(version.run_id, report.to_dict(), artifact)
        client.set_model_version_tag(name, number, TAG_REPORT, artifact)
    return artifact
