"""The public API of lockgate.prompts is a decision: changing it must change this test."""

from __future__ import annotations

import lockgate.prompts

EXPECTED = [
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


def test_public_api_is_pinned() -> None:
    assert lockgate.prompts.__all__ == EXPECTED
