"""``DEPLOYMENT|SPEC`` arguments: a spec file, or a deployment's live spec from the rollout store.

``lockgate runbook``, ``lockgate checklist`` and ``lockgate plan --cost`` take either. A file that
exists (or a name ending in .yaml, .yml or .json) is a spec; anything else is a deployment name,
read from ``--store`` (default: the SQLite store under LOCKGATE_HOME that ``lockgate serve
--deployment`` uses). The choice is a pure function; reading the store is the shell around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from lockgate.errors import NotFound, UserError

if TYPE_CHECKING:  # importing the rollout package loads numpy: only the commands need it
    from lockgate.rollout.spec import DeploymentSpec

StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Rollout store URL for a DEPLOYMENT (default: sqlite under LOCKGATE_HOME)."),
]
_SPEC_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Target:
    """What a ``DEPLOYMENT|SPEC`` argument names."""

    kind: Literal["spec", "deployment"]
    value: str


def classify_target(text: str, *, is_file: bool) -> Target:
    """A spec file when it exists or looks like one; a deployment name when it is a valid name."""
    from lockgate.rollout.spec import NAME_PATTERN, NAME_RULE

    if is_file or text.lower().endswith(_SPEC_SUFFIXES) or "/" in text or "\\" in text:
        return Target("spec", text)
    if NAME_PATTERN.fullmatch(text):
        return Target("deployment", text)
    raise UserError(
        f"'{text}' is neither a spec file nor a deployment name",
        hint=f"give the path of a deployment spec (YAML), or a deployment's name ({NAME_RULE}) "
        "with --store URL",
    )


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (None for other databases and in-memory SQLite)."""
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(prefix):
            path = url[len(prefix) :].split("?", 1)[0]
            return Path(path) if path and path != ":memory:" else None
    return None


def default_store() -> str:
    """The store ``lockgate serve --deployment`` uses when none is given."""
    from lockgate.rollout.store import default_store_url
    from lockgate.settings import current_settings

    return default_store_url(current_settings().home)


def load_live_spec(name: str, store_url: str | None) -> tuple[DeploymentSpec, str]:
    """The spec the store holds for deployment ``name`` (the one the controller runs) and the store URL."""
    from lockgate.rollout.sqlstore import SqlStore

    url = store_url or default_store()
    sqlite = sqlite_file(url)
    if sqlite is not None and not sqlite.exists():
        # opening it would create an empty store: say what is missing instead
        raise NotFound(
            f"no rollout store at {sqlite}, so no deployment '{name}' to read",
            hint="give --store URL (the one `lockgate serve --store` uses), or the deployment's spec file",
        )
    store = SqlStore(url)
    try:
        try:
            deployment = store.get_deployment(name)
        except NotFound:
            known = ", ".join(d.name for d in store.list_deployments()) or "none"
            raise NotFound(
                f"no deployment '{name}' in the rollout store (deployments there: {known})",
                hint="check the name (`lockgate rollout status NAME` on the server), give --store URL, "
                "or give the spec file",
            ) from None
    finally:
        store.close()
    return deployment.spec, url


def resolve_spec(text: str, store_url: str | None) -> tuple[DeploymentSpec, str | None]:
    """The spec a ``DEPLOYMENT|SPEC`` argument names, and the store it came from (None for a file)."""
    from lockgate.rollout.spec import load_spec

    target = classify_target(text, is_file=Path(text).is_file())
    if target.kind == "deployment":
        return load_live_spec(target.value, store_url)
    path = Path(target.value)
    if not path.is_file():
        raise NotFound(
            f"no spec file {path}",
            hint="check the path, or give a deployment's name to read its live spec from the store",
        )
    return load_spec(path), None
