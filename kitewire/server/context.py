"""What a participant may use of the server: a narrow context instead of the whole ``Server``.

Participants get settings, the node id, a PeerConnection factory and one
callback; they never reach the HTTP side, the room manager or other rooms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from kitewire.transport import PeerConnection

from .webhooks import WebhookNotifier

__all__ = ["ParticipantContext", "SessionSettings"]


class SessionSettings(Protocol):
    """The server settings a session reads (``ServerConfig`` has them)."""

    @property
    def ping_interval(self) -> int: ...

    @property
    def ping_timeout(self) -> int: ...

    @property
    def ice_connect_timeout(self) -> float: ...

    @property
    def sync_streams(self) -> bool: ...


@dataclass(frozen=True)
class ParticipantContext:
    """The server as one participant sees it."""

    settings: SessionSettings
    #: The node id put in every JoinResponse's ServerInfo.
    node_id: str
    #: False when PeerConnections cannot be created (signalling still works).
    media_available: bool
    #: A server-side PeerConnection honouring the server's ICE settings.
    new_peer_connection: Callable[[], PeerConnection]
    #: Called once the participant has left its room (the server may then close the room if empty).
    left_room: Callable[[], None]
    #: Where the participant's joins, leaves and tracks are reported (sends nothing unless configured).
    webhooks: WebhookNotifier = field(default_factory=WebhookNotifier)
