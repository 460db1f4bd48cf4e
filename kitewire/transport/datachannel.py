"""SCTP data channels (DCEP) on aiortc's RTCSctpTransport / RTCDataChannel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal, cast

from ._callbacks import invoke_callback
from .aiortc_seam import RTCDataChannel

__all__ = ["DataChannel", "DataChannelState"]

logger = logging.getLogger(__name__)

DataChannelState = Literal["connecting", "open", "closing", "closed"]


class DataChannel:
    """One SCTP data channel of a :class:`~kitewire.transport.PeerConnection`.

    Obtained from :meth:`PeerConnection.create_data_channel` (local) or
    delivered to ``PeerConnection.on_data_channel`` (remote-created; those are
    already open when delivered, so their ``on_open`` never fires). Set the
    callbacks ``on_message`` (``bytes`` for binary, ``str`` for text
    messages), ``on_open`` and ``on_close``. Exceptions raised by callbacks
    are logged, never propagated into the transport.
    """

    def __init__(self, channel: RTCDataChannel) -> None:
        self._channel = channel
        self._tasks: set[asyncio.Future[Any]] = set()
        self.on_message: Callable[[bytes | str], object] | None = None
        self.on_open: Callable[[], object] | None = None
        self.on_close: Callable[[], object] | None = None
        channel.on("message", self._handle_message)
        channel.on("open", self._handle_open)
        channel.on("close", self._handle_close)

    @property
    def label(self) -> str:
        """The channel label (LiveKit uses "_reliable" and "_lossy")."""
        return self._channel.label

    @property
    def ordered(self) -> bool:
        """Whether messages are delivered in order."""
        return self._channel.ordered

    @property
    def max_retransmits(self) -> int | None:
        """Retransmission limit (None = reliable)."""
        return self._channel.maxRetransmits

    @property
    def protocol(self) -> str:
        """The sub-protocol string."""
        return self._channel.protocol

    @property
    def id(self) -> int | None:
        """The SCTP stream id, once assigned."""
        return self._channel.id

    @property
    def ready_state(self) -> DataChannelState:
        """ "connecting", "open", "closing" or "closed"."""
        return cast(DataChannelState, self._channel.readyState)

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for sending and not yet acknowledged by SCTP's sender queue."""
        return self._channel.bufferedAmount

    def send(self, data: bytes | str) -> None:
        """Queue a message. Raises ConnectionError if the channel is not open and
        ValueError for anything but bytes/str."""
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, (bytes, str)):
            raise ValueError(f"data channel message: bytes or str expected, got {type(data).__name__}")
        if self._channel.readyState != "open":
            raise ConnectionError(f"data channel {self.label!r} is {self._channel.readyState}, not open")
        self._channel.send(data)

    def close(self) -> None:
        """Close the channel (idempotent)."""
        if self._channel.readyState in ("closing", "closed"):
            return
        try:
            self._channel.close()
        except Exception:  # the transport may already be gone
            logger.debug("data channel %r close failed", self.label, exc_info=True)

    def _invoke(self, callback: Callable[..., object] | None, *args: object) -> None:
        invoke_callback(self._tasks, "callback of data channel", self.label, callback, *args)

    def _handle_message(self, message: bytes | str) -> None:
        self._invoke(self.on_message, message)

    def _handle_open(self) -> None:
        self._invoke(self.on_open)

    def _handle_close(self) -> None:
        self._invoke(self.on_close)

    def __repr__(self) -> str:
        return f"DataChannel(label={self.label!r}, id={self.id}, state={self.ready_state})"
