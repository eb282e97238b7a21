from __future__ import annotations

from lockgate.llm.decoding import Delta, Usage, finish_reason, next_delta, stop_index, unsure_tail


def test_the_earliest_stop_string_wins() -> None:
    assert stop_index("one. two\n\nthree", ("\n\n", ".")) == 3
    assert stop_index("no stop here", ("\n",)) is None
    assert stop_index("text", ("",)) is None


def test_a_tail_that_may_become_a_stop_string_waits() -> None:
    assert unsure_tail("answer\n", ("\n\n",)) == 1
    assert unsure_tail("answer END", ("ENDING",)) == 3
    assert unsure_tail("answer", ("\n\n",)) == 0
    assert unsure_tail("caf\ufffd", ()) == 1  # a UTF-8 character split between tokens


def test_a_stop_string_made_of_two_tokens_is_found_and_not_sent() -> None:
    stops = ("\n\n",)
    first = next_delta("Hello\n", 0, stops, is_last=False)
    assert first == Delta("Hello", is_stopped=False)
    second = next_delta("Hello\n\nmore", len(first.text), stops, is_last=False)
    assert second == Delta("", is_stopped=True)


def test_a_held_tail_that_does_not_become_a_stop_is_sent_later() -> None:
    assert next_delta("a\n", 0, ("\n\n",), is_last=False).text == "a"
    assert next_delta("a\nb", 1, ("\n\n",), is_last=False).text == "\nb"


def test_the_last_step_sends_everything_but_a_stop() -> None:
    assert next_delta("a\n", 0, ("\n\n",), is_last=True) == Delta("a\n", is_stopped=False)
    assert next_delta("ab", 1, (), is_last=True).text == "b"


def test_finish_reasons() -> None:
    common = {"completion_tokens": 3, "max_tokens": 8, "context_left": 10}
    assert finish_reason(is_stopped=False, is_eos=False, **common) is None
    assert finish_reason(is_stopped=True, is_eos=False, **common) == "stop"
    assert finish_reason(is_stopped=False, is_eos=True, **common) == "stop"
    assert (
        finish_reason(is_stopped=False, is_eos=False, completion_tokens=8, max_tokens=8, context_left=5)
        == "length"
    )
    assert (
        finish_reason(is_stopped=False, is_eos=False, completion_tokens=2, max_tokens=8, context_left=0)
        == "length"
    )


def test_usage_adds_up() -> None:
    assert Usage(5, 7).to_dict() == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
