from __future__ import annotations

from lockgate.rollout.phases import LIVE_PHASES, TERMINAL_PHASES, TRANSITIONS, Phase


def test_each_phase_answers_its_own_questions() -> None:
    for phase in Phase:
        assert phase.is_live == (phase in LIVE_PHASES)
        assert phase.is_terminal == (phase in TERMINAL_PHASES)
        assert phase.is_settled == (phase.is_terminal or phase is Phase.HALTED)
    assert {p for p in Phase if p.is_alarm} == {Phase.ROLLED_BACK, Phase.HALTED}


def test_a_settled_phase_moves_only_to_an_end() -> None:
    # what `rollout status --watch` relies on to stop: nothing live follows a settled phase
    for phase in Phase:
        if phase.is_settled:
            assert not any(target.is_live for target in TRANSITIONS[phase]), phase
