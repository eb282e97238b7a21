"""The "LLM" a prompt gate calls: a Python entry ``module:function`` named in the policy.

lockgate runs offline, so the default, :func:`echo`, answers with the filled prompt itself: with
similarity scoring this measures how much of what the answer needs the prompt carries, and it makes
the gate's logic real and deterministic. Plug in your own model call, e.g.
``responder: myapp.llm:answer`` with ``def answer(prompt: str) -> str``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from lockgate.errors import UserError

__all__ = ["echo", "load_responder"]


def echo(prompt: str) -> str:
    """The offline default: the answer is the filled prompt."""
    return prompt


def load_responder(entry: str) -> Callable[[str], str]:
    """Import ``module:function``; a UserError naming the entry when it cannot be found."""
    module_name, _, function_name = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(
            f"responder '{entry}': module '{module_name}' cannot be imported ({exc})",
            hint="install it or put its folder on PYTHONPATH",
        ) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UserError(
            f"responder '{entry}': '{module_name}' has no function '{function_name}'",
            hint="name a function that takes the filled prompt and returns the answer",
        )
    return function  # type: ignore[no-any-return]
