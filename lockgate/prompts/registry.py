"""Prompt versions for LLM applications, on MLflow's prompt registry (``mlflow.genai``).

A prompt is a named template with numbered, immutable versions and aliases (``champion``), like a
registered model. lockgate only calls MLflow's API; it never writes MLflow's tables.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from lockgate.errors import NotFound, UserError
from lockgate.tracking.connection import Connection, server_error, server_errors

__all__ = [
    "PromptRef",
    "PromptVersionInfo",
    "diff_prompts",
    "get_prompt",
    "list_prompt_versions",
    "list_prompts",
    "parse_prompt_ref",
    "register_prompt",
    "set_prompt_alias",
    "tag_prompt_version",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class PromptRef:
    """``NAME@VERSION`` or ``NAME@ALIAS`` (or ``prompts:/NAME/VERSION``, ``prompts:/NAME@ALIAS``)."""

    name: str
    version: int | None = None
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"prompts:/{self.name}@{self.alias}" if self.alias else f"prompts:/{self.name}/{self.version}"

    def __str__(self) -> str:
        return f"{self.name}@{self.alias if self.alias else self.version}"


def parse_prompt_ref(text: str, *, default_alias: str | None = None) -> PromptRef:
    """Parse a prompt reference; a bare NAME means ``default_alias`` (or is an error without one)."""
    body = text.removeprefix("prompts:/").strip("/")
    name, slash, version = body.partition("/")
    if not slash:
        name, at, version = body.partition("@")
        if not at:
            version = default_alias or ""
    if not _NAME.match(name) or not version:
        raise UserError(
            f"'{text}' is not a prompt reference",
            hint="write NAME@VERSION, NAME@ALIAS, prompts:/NAME/VERSION or prompts:/NAME@ALIAS",
        )
    if version.isdigit():
        return PromptRef(name, version=int(version))
    if slash:
        raise UserError(f"'{text}' names no version number", hint="write prompts:/NAME/VERSION")
    return PromptRef(name, alias=version)


@dataclass(frozen=True)
class PromptVersionInfo:
    """A prompt version as lockgate shows it."""

    name: str
    version: int
    template: str
    message: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    variables: tuple[str, ...]
    created_ms: int

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def _info(version: Any) -> PromptVersionInfo:
    template = version.template if isinstance(version.template, str) else str(version.template)
    return PromptVersionInfo(
        name=str(version.name),
        version=int(version.version),
        template=template,
        message=str(version.commit_message or ""),
        aliases=tuple(sorted(version.aliases or ())),
        tags={k: str(v) for k, v in (version.tags or {}).items() if not k.startswith("_mlflow")},
        variables=tuple(sorted(version.variables or ())),
        created_ms=int(version.creation_timestamp or 0),
    )


def register_prompt(
    conn: Connection,
    name: str,
    template: str,
    *,
    message: str | None = None,
    tags: dict[str, str] | None = None,
    alias: str | None = None,
) -> PromptVersionInfo:
    """Register ``template`` as the next version of prompt ``name`` (created on first use)."""
    import mlflow.genai

    if not _NAME.match(name):
        raise UserError(f"'{name}' is not a valid prompt name", hint="use letters, digits, '.', '_' or '-'")
    if not template.strip():
        raise UserError(
            f"the template for prompt '{name}' is empty", hint="write the prompt text, e.g. {{question}}"
        )
    with server_errors(conn, f"register a version of prompt '{name}'", hint=_edit_hint(name)):
        version = mlflow.genai.register_prompt(name, template, commit_message=message, tags=tags)
    if alias is not None:
        with server_errors(conn, f"set alias '{alias}' of prompt '{name}'", hint=_edit_hint(name)):
            mlflow.genai.set_prompt_alias(name, alias, int(version.version))
    return get_prompt(conn, PromptRef(name, version=int(version.version)))


def _edit_hint(name: str) -> str:
    # MLflow keeps a prompt as a registered model: its permissions are the model's
    return f"ask the prompt's owner or an admin of the server for EDIT on registered model '{name}'"


def get_prompt(conn: Connection, ref: PromptRef | str) -> PromptVersionInfo:
    """One prompt version (by number or alias); NotFound naming the versions there are."""
    import mlflow.genai
    from mlflow.exceptions import MlflowException

    parsed = ref if isinstance(ref, PromptRef) else parse_prompt_ref(ref)
    try:
        return _info(mlflow.genai.load_prompt(parsed.uri, link_to_model=False))
    except MlflowException as exc:
        refused = server_error(exc, conn.settings.tracking_uri, f"read prompt '{parsed.name}'")
        if refused is not None:  # a 401/403 is not "there is no prompt"
            raise refused from None
        versions = _versions_or_none(conn, parsed.name)
        if versions is None:
            raise NotFound(
                f"there is no prompt '{parsed.name}'",
                hint="register one: lockgate prompts register NAME --template 'text with {{variables}}'",
            ) from exc
        known = ", ".join(str(v.version) for v in versions) or "none"
        what = f"alias '{parsed.alias}'" if parsed.alias else f"version {parsed.version}"
        raise NotFound(
            f"prompt '{parsed.name}' has no {what}",
            hint=f"its versions are {known}",
        ) from exc


def _versions_or_none(conn: Connection, name: str) -> list[PromptVersionInfo] | None:
    from mlflow.exceptions import MlflowException

    try:
        found = conn.client.search_prompt_versions(name)
    except MlflowException:
        return None
    return [_info(v) for v in getattr(found, "prompt_versions", found)]


def list_prompt_versions(conn: Connection, name: str) -> list[PromptVersionInfo]:
    """Every version of prompt ``name``, newest first, each with its aliases."""
    versions = _versions_or_none(conn, name)
    if versions is None:
        raise NotFound(f"there is no prompt '{name}'", hint="`lockgate prompts list` shows the prompts")
    # search_prompt_versions leaves aliases out; load each version to show them.
    return sorted(
        (get_prompt(conn, PromptRef(name, version=v.version)) for v in versions), key=lambda v: -v.version
    )


def list_prompts(conn: Connection) -> list[PromptVersionInfo]:
    """The latest version of every prompt, by name."""
    import mlflow.genai

    names = sorted({str(p.name) for p in mlflow.genai.search_prompts()})
    return [list_prompt_versions(conn, name)[0] for name in names]


def set_prompt_alias(conn: Connection, name: str, alias: str, version: int) -> PromptVersionInfo:
    """Point ``alias`` of prompt ``name`` at ``version``."""
    import mlflow.genai

    target = get_prompt(conn, PromptRef(name, version=version))
    with server_errors(conn, f"set alias '{alias}' of prompt '{name}'", hint=_edit_hint(name)):
        mlflow.genai.set_prompt_alias(name, alias, version)
    return get_prompt(conn, PromptRef(target.name, version=target.version))


def tag_prompt_version(conn: Connection, version: PromptVersionInfo, key: str, value: str) -> None:
    import mlflow.genai

    with server_errors(
        conn, f"tag version {version.version} of prompt '{version.name}'", hint=_edit_hint(version.name)
    ):
        mlflow.genai.set_prompt_version_tag(version.name, version.version, key, value)


def diff_prompts(old: PromptVersionInfo, new: PromptVersionInfo) -> str:
    """A unified diff of two versions' templates ('' when they are equal)."""
    lines = difflib.unified_diff(
        old.template.splitlines(keepends=True),
        new.template.splitlines(keepends=True),
        fromfile=old.ref,
        tofile=new.ref,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
