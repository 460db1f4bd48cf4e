"""Offer/answer rounds of one participant's transport, as named states.

The server starts every round it needs: with two PeerConnections it offers
the subscriber connection; with one (``/rtc/v1``) it asks the client to offer
(``MediaSectionsRequirement``). Either way one round is outstanding at a time,
and changes made while it is (a new subscription, a released m-line) are owed
another round once the remote description arrives. livekit-server's
``NegotiationState`` has the same three states (none, waiting for remote, retry).
"""

from __future__ import annotations

import enum

__all__ = ["Negotiation", "NegotiationState"]


class NegotiationState(enum.Enum):
    """Where a transport's offer/answer round stands."""

    #: Nothing outstanding: a change may start a round at once.
    NONE = "none"
    #: A round was started; its remote description (the answer to our offer, or the offer we asked for) is due.
    AWAITING_REMOTE = "awaiting remote"
    #: As AWAITING_REMOTE, and more changes came since: another round follows when it arrives.
    RETRY = "retry"


class Negotiation:
    """The state machine; the transport does the sending and applies descriptions.

    Usage by a transport::

        if negotiation.request():      # a change needs negotiating
            start_round()              # call negotiation.round_started() when the description is written
        ...
        if negotiation.remote_arrived():
            request_again()
    """

    def __init__(self) -> None:
        self.state = NegotiationState.NONE
        #: Rounds started so far (offers made or asked for).
        self.rounds = 0

    @property
    def awaiting_remote(self) -> bool:
        """Whether a round is outstanding (its remote description not yet arrived)."""
        return self.state is not NegotiationState.NONE

    def request(self) -> bool:
        """A change needs negotiating. True when the caller should start a round now."""
        if self.state is NegotiationState.NONE:
            self.state = NegotiationState.AWAITING_REMOTE
            self.rounds += 1
            return True
        self.state = NegotiationState.RETRY
        return False

    def round_started(self) -> None:
        """The round's local description is being written now, so it covers every change made until here."""
        if self.state is NegotiationState.RETRY:
            self.state = NegotiationState.AWAITING_REMOTE

    def remote_arrived(self) -> bool:
        """The remote description of the round arrived. True when changes are owed another round.

        A description nobody asked for (a client offering on its own) leaves the state as it is.
        """
        owed = self.state is NegotiationState.RETRY
        if self.state is not NegotiationState.NONE:
            self.state = NegotiationState.NONE
        return owed

    def abandon(self) -> None:
        """The round could not be started (the connection closed, the offer failed): nothing is outstanding."""
        self.state = NegotiationState.NONE
