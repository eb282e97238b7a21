"""The model registry, on MLflow's: versions with lineage, aliases, and artifact checksums.

Registering a run's model records, as tags on the MLflow model version: the run, the datasets it was
trained on (digests), the git commit, the parent version for a derived model (optimized, distilled)
and the SHA-256 of the model's artifact folder, which the server verifies before it loads the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.errors import NotFound
from lockgate.tracking.connection import Connection, server_errors
from lockgate.tracking.digest import model_sha256
from lockgate.tracking.refs import Ref, parse_ref, validate_alias, validate_artifact_path, validate_name
from lockgate.tracking.runs import get_run

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

__all__ = [
    "TAG_ARTIFACT_SHA256",
    "TAG_PARENT",
    "LineageNode",
    "RegisteredVersion",
    "delete_alias",
    "derived_versions",
    "get_model_version",
    "lineage",
    "list_models",
    "list_versions",
    "move_alias",
    "register",
    "set_alias",
]

TAG_RUN = "lockgate.run_id"
# models:/NAME/VERSION or models:/NAME@ALIAS: a registered version, as deployment specs name one
MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
TAG_ARTIFACT_SHA256 = "lockgate.artifact_sha256"
TAG_PARENT = "lockgate.parent"
TAG_DATASETS = "lockgate.datasets"
TAG_COMMIT = "lockgate.git_commit"
TAG_METHOD = "lockgate.method"
TAG_METHOD_PARAMS = "lockgate.method_params"


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version as lockgate shows it."""

    name: str
    version: int
    run_id: str | None
    source: str
    aliases: tuple[str, ...]
    artifact_sha256: str | None
    parent: str | None
    method: str
    datasets: tuple[dict[str, Any], ...]
    git_commit: str | None
    created_ms: int
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _from_mlflow(mv: ModelVersion, aliases: Mapping[str, str] | None = None) -> RegisteredVersion:
    """``aliases`` (alias -> version) from the registered model: version searches leave them out."""
    tags: dict[str, str] = dict(mv.tags or {})
    if aliases is not None:
        own = tuple(sorted(a for a, v in aliases.items() if str(v) == str(mv.version)))
    else:
        own = tuple(sorted(mv.aliases or ()))
    try:
        datasets = tuple(json.loads(tags.get(TAG_DATASETS, "[]")))
    except json.JSONDecodeError:
        datasets = ()
    return RegisteredVersion(
        name=mv.name,
        version=int(mv.version),
        run_id=mv.run_id or tags.get(TAG_RUN),
        source=mv.source or "",
        aliases=own,
        artifact_sha256=tags.get(TAG_ARTIFACT_SHA256),
        parent=tags.get(TAG_PARENT),
        method=tags.get(TAG_METHOD, "train"),
        datasets=datasets,
        git_commit=tags.get(TAG_COMMIT),
        created_ms=int(mv.creation_timestamp or 0),
        description=mv.description or "",
        tags=tags,
    )


def _model_not_found(conn: Connection, name: str) -> NotFound:
    known = sorted(m.name for m in conn.client.search_registered_models(max_results=1000))
    hint = f"registered models: {', '.join(known)}" if known else "no models are registered yet"
    return NotFound(
        f"model '{name}' is not registered",
        hint=hint + "; register one with `lockgate register RUN --name NAME`",
    )


def list_versions(conn: Connection, name: str) -> list[RegisteredVersion]:
    """All versions of model ``name``, oldest first."""
    from mlflow.exceptions import MlflowException

    validate_name(name, "model name")
    try:
        model = conn.client.get_registered_model(name)
    except MlflowException as exc:
        raise _model_not_found(conn, name) from exc
    aliases = dict(model.aliases or {})
    versions = conn.client.search_model_versions(f"name = '{name}'", max_results=10_000)
    return sorted((_from_mlflow(v, aliases) for v in versions), key=lambda v: v.version)


def get_model_version(conn: Connection, ref: str | Ref) -> RegisteredVersion:
    """``NAME@VERSION``, ``NAME@ALIAS`` or ``NAME`` (the latest version)."""
    parsed = ref if isinstance(ref, Ref) else parse_ref(ref, "model name")
    versions = list_versions(conn, parsed.name)
    if not versions:
        raise NotFound(f"model '{parsed.name}' has no versions", hint="register one first")
    if parsed.alias is not None:
        for version in versions:
            if parsed.alias in version.aliases:
                return version
        aliases = sorted({a for v in versions for a in v.aliases})
        raise NotFound(
            f"model '{parsed.name}' has no alias '{parsed.alias}'",
            hint=(f"aliases are {', '.join(aliases)}" if aliases else "it has no aliases")
            + f"; set one with `lockgate alias set {parsed.name} {parsed.alias} VERSION`",
        )
    if parsed.version is None:
        return versions[-1]
    for version in versions:
        if version.version == parsed.version:
            return version
    numbers = [v.version for v in versions]
    span = f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
    raise NotFound(
        f"model '{parsed.name}' has no version {parsed.version}; versions are {span}",
        hint=f"see `lockgate models show {parsed.name}`",
    )


def list_models(conn: Connection) -> list[dict[str, Any]]:
    """Each registered model with its latest version and aliases."""
    out = []
    for model in conn.client.search_registered_models(max_results=1000):
        versions = conn.client.search_model_versions(f"name = '{model.name}'", max_results=10_000)
        numbers = sorted(int(v.version) for v in versions)
        out.append(
            {
                "name": model.name,
                "versions": len(numbers),
                "latest": numbers[-1] if numbers else None,
                "aliases": dict(sorted((model.aliases or {}).items())),
                "updated_ms": int(model.last_updated_timestamp or 0),
                "description": model.description or "",
            }
        )
    return sorted(out, key=lambda m: str(m["name"]))


def _find_logged_model(
    conn: Connection, run_id: str, experiment_id: str, artifact: str
) -> tuple[str, str, str | None]:
    """(source URI, local folder, logged model id or None) of the model named ``artifact`` logged by
    the run. A tracking server checks that a ``models:/m-...`` source names the version's model id."""
    import mlflow.artifacts

    logged = conn.client.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{artifact}'",
    )
    if logged:
        model = logged[0]
        local = mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location)
        return f"models:/{model.model_id}", local, str(model.model_id)
    # MLflow 2 layout: the model folder is an artifact of the run.
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact)
    except Exception as exc:
        names = sorted(
            {
                m.name
                for m in conn.client.search_logged_models(
                    experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'"
                )
            }
        )
        raise NotFound(
            f"run '{run_id}' has no logged model named '{artifact}'",
            hint=(
                f"its models are: {', '.join(names)}; pass --artifact NAME"
                if names
                else "log one inside the run with run.log_model(model)"
            ),
        ) from exc
    if not (Path(local) / "MLmodel").exists():
        raise NotFound(
            f"artifact '{artifact}' of run '{run_id}' is not an MLflow model (no MLmodel file)",
            hint="log the model with run.log_model(model) or mlflow.<flavor>.log_model",
        )
    return f"runs:/{run_id}/{artifact}", local, None


def register(
    conn: Connection,
    run_ref: str,
    name: str,
    *,
    artifact: str = "model",
    parent: str | None = None,
    method: str | None = None,
    method_params: Mapping[str, Any] | None = None,
    description: str = "",
    alias: str | None = None,
) -> RegisteredVersion:
    """Register the model logged by a run as a new version of ``name``, with lineage tags."""
    from mlflow.exceptions import MlflowException

    validate_name(name, "model name")
    validate_artifact_path(artifact, "artifact name")
    if alias is not None:
        validate_alias(alias)
    run = get_run(conn, run_ref)
    parent_version = get_model_version(conn, parent) if parent else None
    source, local, model_id = _find_logged_model(conn, run.info.run_id, run.info.experiment_id, artifact)
    tags = {
        TAG_RUN: run.info.run_id,
        TAG_ARTIFACT_SHA256: model_sha256(Path(local)),
        TAG_DATASETS: run.data.tags.get("lockgate.datasets", "[]"),
        TAG_COMMIT: run.data.tags.get("lockgate.git.commit", "none"),
        TAG_METHOD: method or ("derive" if parent_version else "train"),
    }
    if parent_version is not None:
        tags[TAG_PARENT] = f"{parent_version.name}/{parent_version.version}"
    if method_params:
        tags[TAG_METHOD_PARAMS] = json.dumps(dict(method_params), sort_keys=True)
    try:
        with server_errors(conn, f"create registered model '{name}'"):
            conn.client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    with server_errors(
        conn,
        f"add a version to registered model '{name}'",
        hint=f"ask the model's owner or an admin of the server for EDIT on registered model '{name}'",
    ):
        mv = conn.client.create_model_version(
            name,
            source,
            run_id=run.info.run_id,
            tags=tags,
            description=description or None,
            model_id=model_id,
        )
        if alias is not None:
            conn.client.set_registered_model_alias(name, alias, mv.version)
    return get_model_version(conn, Ref(name, version=int(mv.version)))


def set_alias(conn: Connection, name: str, alias: str, version: int) -> RegisteredVersion:
    """Point ``alias`` of model ``name`` at ``version`` (moving it if it pointed elsewhere)."""
    validate_alias(alias)
    target = get_model_version(conn, Ref(name, version=version))
    with server_errors(conn, f"set alias '{alias}' of registered model '{name}'"):
        conn.client.set_registered_model_alias(name, alias, str(target.version))
    return get_model_version(conn, Ref(name, version=version))


def move_alias(conn: Connection, model_uri: str, alias: str) -> tuple[str | None, str] | None:
    """Point ``alias`` at the version ``model_uri`` names (``models:/NAME/VERSION``, or
    ``models:/NAME@OTHER`` resolved now): returns (previous version or None, new version), or None
    for a URI that is not a registered model (a path, a run)."""
    from mlflow.exceptions import MlflowException

    match = MODELS_URI.match(model_uri)
    if match is None:
        return None
    name = match["name"]
    validate_alias(alias)
    client = conn.client
    try:
        target = (
            str(client.get_model_version_by_alias(name, match["alias"]).version)
            if match["alias"]
            else str(client.get_model_version(name, match["version"]).version)
        )
    except MlflowException as exc:
        raise NotFound(f"model URI '{model_uri}' names no registered version: {exc.message}") from None
    try:
        previous: str | None = str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        previous = None
    if previous != target:
        with server_errors(conn, f"move alias '{alias}' of registered model '{name}'"):
            client.set_registered_model_alias(name, alias, target)
    return previous, target


def delete_alias(conn: Connection, name: str, alias: str) -> None:
    get_model_version(conn, Ref(name, alias=validate_alias(alias)))
    with server_errors(conn, f"delete alias '{alias}' of registered model '{name}'"):
        conn.client.delete_registered_model_alias(name, alias)


def derived_versions(conn: Connection, version: RegisteredVersion) -> list[RegisteredVersion]:
    """Versions (of any model) whose parent is ``version``."""
    key = f"{version.name}/{version.version}"
    found = conn.client.search_model_versions(f"tags.`{TAG_PARENT}` = '{key}'", max_results=10_000)
    aliases: dict[str, dict[str, str]] = {}
    for v in found:
        if v.name not in aliases:
            aliases[v.name] = dict(conn.client.get_registered_model(v.name).aliases or {})
    return sorted((_from_mlflow(v, aliases[v.name]) for v in found), key=lambda v: (v.name, v.version))


@dataclass(frozen=True)
class LineageNode:
    """A model version with the versions derived from it."""

    version: RegisteredVersion
    children: tuple[LineageNode, ...]


def lineage(conn: Connection, ref: str) -> tuple[list[RegisteredVersion], LineageNode]:
    """The ancestors of ``ref`` (root first) and the tree of versions derived from the root."""
    current = get_model_version(conn, ref)
    ancestors = [current]
    seen = {current.ref}
    while current.parent:
        parent_name, _, parent_version = current.parent.partition("/")
        current = get_model_version(conn, Ref(parent_name, version=int(parent_version)))
        if current.ref in seen:  # a cycle can only come from hand-edited tags
            break
        seen.add(current.ref)
        ancestors.append(current)
    ancestors.reverse()

    def build(node: RegisteredVersion, depth: int) -> LineageNode:
        if depth > 50:
            return LineageNode(node, ())
        return LineageNode(node, tuple(build(c, depth + 1) for c in derived_versions(conn, node)))

    return ancestors, build(ancestors[0], 0)
