"""The negotiation state machine, driven without a network."""

from __future__ import annotations

from kitewire.server.negotiation import Negotiation, NegotiationState


def _state(negotiation: Negotiation) -> NegotiationState:
    # Read through a call: each step changes the state, which mypy would otherwise take as fixed by the last assert.
    return negotiation.state


def test_a_change_with_nothing_outstanding_starts_a_round() -> None:
    negotiation = Negotiation()
    assert _state(negotiation) is NegotiationState.NONE and not negotiation.awaiting_remote
    assert negotiation.request() is True
    assert _state(negotiation) is NegotiationState.AWAITING_REMOTE and negotiation.awaiting_remote
    assert negotiation.rounds == 1


def test_changes_while_a_round_is_out_coalesce_into_one_retry() -> None:
    negotiation = Negotiation()
    negotiation.request()
    assert [negotiation.request() for _ in range(5)] == [False] * 5
    assert _state(negotiation) is NegotiationState.RETRY
    assert negotiation.remote_arrived() is True, "the changes are owed a round"
    assert _state(negotiation) is NegotiationState.NONE
    assert negotiation.request() is True and negotiation.rounds == 2


def test_an_answer_without_later_changes_settles() -> None:
    negotiation = Negotiation()
    negotiation.request()
    assert negotiation.remote_arrived() is False
    assert _state(negotiation) is NegotiationState.NONE


def test_changes_before_the_description_is_written_are_in_it() -> None:
    negotiation = Negotiation()
    negotiation.request()
    negotiation.request()  # lands while the offer is still being prepared
    negotiation.round_started()
    assert _state(negotiation) is NegotiationState.AWAITING_REMOTE
    assert negotiation.remote_arrived() is False


def test_changes_after_the_description_is_written_need_another_round() -> None:
    negotiation = Negotiation()
    negotiation.request()
    negotiation.round_started()
    negotiation.request()
    assert _state(negotiation) is NegotiationState.RETRY
    assert negotiation.remote_arrived() is True


def test_a_description_nobody_asked_for_changes_nothing() -> None:
    negotiation = Negotiation()
    assert negotiation.remote_arrived() is False
    assert _state(negotiation) is NegotiationState.NONE and negotiation.rounds == 0


def test_an_abandoned_round_leaves_nothing_outstanding() -> None:
    negotiation = Negotiation()
    negotiation.request()
    negotiation.request()
    negotiation.abandon()
    assert _state(negotiation) is NegotiationState.NONE
    assert negotiation.request() is True
