"""SCTP data channels (DCEP) on top of aiortc's RTCSctpTransport / RTCDataChannel."""

from __future__ import annotations

from typing import Callable, Literal

__all__ = ["DataChannel", "DataChannelState"]

DataChannelState = Literal["connecting", "open", "closing", "closed"]


class DataChannel:
    """One SCTP data channel of a :class:`~kitewire.transport.PeerConnection`.

    Created with :meth:`PeerConnection.create_data_channel` (local) or delivered
    to ``PeerConnection.on_data_channel`` (remote-created). Set the callbacks
    ``on_message`` (called with ``bytes`` for binary or ``str`` for text
    messages), ``on_open`` and ``on_close``.
    """

    def __init__(
        self,
        label: str,
        *,
        ordered: bool = True,
        max_retransmits: int | None = None,
        protocol: str = "",
    ) -> None:
        self.label = label
        self.ordered = ordered
        self.max_retransmits = max_retransmits
        self.protocol = protocol
        self.on_message: Callable[[bytes | str], object] | None = None
        self.on_open: Callable[[], object] | None = None
        self.on_close: Callable[[], object] | None = None

    @property
    def id(self) -> int | None:
        """The SCTP stream id, once assigned."""
        raise NotImplementedError

    @property
    def ready_state(self) -> DataChannelState:
        """"connecting", "open", "closing" or "closed"."""
        raise NotImplementedError

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for sending and not yet handed to SCTP."""
        raise NotImplementedError

    def send(self, data: bytes | str) -> None:
        """Queue a message. Raises ConnectionError if the channel is not open."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the channel (idempotent)."""
        raise NotImplementedError
