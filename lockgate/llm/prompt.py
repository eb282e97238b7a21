"""A prompt version bound to a generative variant, and how a request's text goes into it.

A deployment spec's ``llm:`` section gives a variant a prompt version from the prompt registry
(``support@2``) and fixed template variables. The template is fetched once, when the deployment
loads, into a :class:`BoundPrompt`; each request to ``/v1/chat/completions`` or
``/v1/completions`` that this variant answers is rendered with it, on the request path, with no
I/O:

- the variables are the request's ``variables`` object (``{"variables": {"tone": "brief"}}``, with
  the openai client ``extra_body={"variables": {...}}``) and the spec's fixed ones (which win);
- the conventional variable ``input`` is the user's text when the request does not give it: the
  last user message of a chat, the ``prompt`` of a completion;
- a template that uses ``{{input}}`` *is* the text the model reads: it replaces the last user
  message (chat) or the prompt (completion). A template without ``{{input}}`` is an instruction:
  it becomes the system message before the conversation (replacing one the request sent), or is
  put before a completion's prompt on a line of its own.

A template variable that neither the request nor the spec gives is a 422 naming every missing one.
Templates are MLflow's text form, ``{{ name }}``; values are put in as they are (never rendered
again, so a value holding braces stays text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.errors import UserError, ValidationError
from lockgate.llm.params import ChatMessage

__all__ = ["INPUT_VARIABLE", "BoundPrompt", "bind_prompt", "registry_prompt", "request_variables"]

INPUT_VARIABLE = "input"
"""The variable a request's own text fills when the request does not give it."""

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class BoundPrompt:
    """A prompt version's text template with the variant's fixed variables."""

    ref: str  # NAME@VERSION, as resolved when it was fetched
    template: str
    fixed: Mapping[str, str] = field(default_factory=dict)
    variables: frozenset[str] = frozenset()

    @property
    def takes_input(self) -> bool:
        return INPUT_VARIABLE in self.variables

    def render(self, given: Mapping[str, str]) -> str:
        """The template with ``given`` and the fixed variables put in; a 422 naming the missing."""
        values = {**given, **self.fixed}
        missing = sorted(self.variables - values.keys())
        if missing:
            names = ", ".join(missing)
            raise ValidationError(
                f"prompt {self.ref} needs the variable{'s' if len(missing) > 1 else ''} {names}, "
                "which the request does not give",
                hint='send them in the body\'s "variables" object, e.g. '
                + '{"variables": {'
                + ", ".join(f'"{name}": "..."' for name in missing)
                + "}} (with the openai client: extra_body={...})",
                detail={"field": "variables", "missing": missing},
            )
        return _VARIABLE.sub(lambda match: values[match.group(1)], self.template)

    def chat(self, messages: tuple[ChatMessage, ...], given: Mapping[str, str]) -> tuple[ChatMessage, ...]:
        """The conversation the model answers: see the module's rules."""
        last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
        values = dict(given)
        if INPUT_VARIABLE not in values and last_user is not None:
            values[INPUT_VARIABLE] = messages[last_user].content
        text = self.render(values)
        if self.takes_input and last_user is not None:
            out = list(messages)
            out[last_user] = ChatMessage("user", text)
            return tuple(out)
        return (ChatMessage("system", text), *(m for m in messages if m.role != "system"))

    def complete(self, prompt: str, given: Mapping[str, str]) -> str:
        """The prompt the model continues: see the module's rules."""
        text = self.render({INPUT_VARIABLE: prompt, **given})
        return text if self.takes_input else f"{text}\n{prompt}"


def bind_prompt(ref: str, template: Any, fixed: Mapping[str, str]) -> BoundPrompt:
    """A fetched prompt version ready to render; a UserError for a template lockgate cannot render
    (a chat template or Jinja2's ``{% %}``)."""
    if not isinstance(template, str) or ("{%" in template and "%}" in template):
        raise UserError(
            f"prompt {ref} is not a text template with {{{{variables}}}}",
            hint="register a text prompt, e.g. 'Answer as {{product}} support: {{input}}'",
        )
    return BoundPrompt(ref, template, dict(fixed), frozenset(_VARIABLE.findall(template)))


def registry_prompt(ref: str) -> tuple[str, Any]:
    """A prompt version from MLflow's prompt registry: (``NAME@VERSION``, its template); the
    registry's NotFound names the versions there are."""
    from lockgate.prompts.registry import get_prompt
    from lockgate.tracking.connection import connect

    version = get_prompt(connect(), ref)
    return version.ref, version.template


def request_variables(body: Mapping[str, Any]) -> dict[str, str]:
    """The body's ``variables`` object (strings, or numbers and booleans written as text)."""
    given = body.get("variables")
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise ValidationError(
            "'variables' must be an object of template variables",
            hint='e.g. {"variables": {"tone": "brief"}}',
            detail={"field": "variables"},
        )
    out: dict[str, str] = {}
    for name, value in given.items():
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, int | float):
            out[name] = str(value)
        else:
            raise ValidationError(
                f"variable '{name}' must be text (or a number)",
                hint='e.g. {"variables": {"tone": "brief"}}',
                detail={"field": f"variables.{name}"},
            )
    return out
