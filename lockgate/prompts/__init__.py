"""Prompt versions for LLM applications on MLflow's prompt registry, and the prompt gate."""

from __future__ import annotations

from lockgate.prompts.gate import record_prompt_report, validate_prompt
from lockgate.prompts.registry import (
    PromptRef,
    PromptVersionInfo,
    diff_prompts,
    get_prompt,
    list_prompt_versions,
    list_prompts,
    parse_prompt_ref,
    register_prompt,
    set_prompt_alias,
)
from lockgate.prompts.responders import echo, load_responder

__all__ = [
    "PromptRef",
    "PromptVersionInfo",
    "diff_prompts",
    "echo",
    "get_prompt",
    "list_prompt_versions",
    "list_prompts",
    "load_responder",
    "parse_prompt_ref",
    "record_prompt_report",
    "register_prompt",
    "set_prompt_alias",
    "validate_prompt",
]
