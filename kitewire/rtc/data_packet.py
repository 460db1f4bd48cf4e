"""What the Room's ``data_received`` and ``sip_dtmf_received`` events carry (livekit.rtc's fields)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kitewire.frames.enums import EnumTypeWrapper

if TYPE_CHECKING:
    from .participant import RemoteParticipant

__all__ = ["DataPacket", "DataPacketKind", "SipDTMF"]


class DataPacketKind(EnumTypeWrapper):
    """How a data packet travelled (livekit.rtc's numbering, which is not the wire's)."""

    KIND_LOSSY = 0
    KIND_RELIABLE = 1


@dataclass
class DataPacket:
    """User data from :meth:`LocalParticipant.publish_data` (or a server's SendData)."""

    data: bytes
    """The payload."""
    kind: int
    """``DataPacketKind.KIND_RELIABLE`` or ``DataPacketKind.KIND_LOSSY``."""
    participant: RemoteParticipant | None
    """Who sent it; None when a server sent it."""
    topic: str | None = None
    """The topic it was published under."""


@dataclass
class SipDTMF:
    """A DTMF digit from :meth:`LocalParticipant.publish_dtmf` (or a SIP participant)."""

    code: int
    """The DTMF code of the digit."""
    digit: str
    """The digit."""
    participant: RemoteParticipant | None = None
    """Who sent it; None when a server sent it."""
