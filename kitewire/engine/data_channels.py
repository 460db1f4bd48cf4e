"""LiveKit data packets on a client's SCTP data channels.

livekit clients open ``_reliable`` (ordered, retransmitted) and ``_lossy``
(unordered, no retransmits) on the PeerConnection they offer on, and send their
:class:`~livekit.protocol.models.DataPacket` messages there; the server opens
channels of the same names towards the client (on the subscriber
PeerConnection, or in single-PC mode on the only one) and delivers others'
packets on them. :class:`DataChannels` is one client's set: it sends on the
client's own channels and reports every packet that arrives on any of them.

Sending is bounded: a packet larger than :data:`MAX_DATA_PACKET_BYTES` is a
ValueError, and a send waits (up to its timeout) while more than
:data:`SEND_HIGH_WATER` bytes are queued on the channel, so a large stream never
piles up in SCTP's send queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from livekit.protocol import models

from kitewire.transport import DataChannel, PeerConnection

__all__ = ["LOSSY", "MAX_DATA_PACKET_BYTES", "RELIABLE", "SEND_HIGH_WATER", "DataChannels"]

logger = logging.getLogger("kitewire.engine")

RELIABLE = "_reliable"
LOSSY = "_lossy"
#: Largest serialized DataPacket sent or accepted: below the 64 KiB SCTP message
#: size every LiveKit peer advertises, with room for the server's identity stamps.
MAX_DATA_PACKET_BYTES = 60_000
#: Bytes queued on a channel above which a send waits for the queue to drain.
SEND_HIGH_WATER = 1 << 20
# How often a waiting send looks at the queue again (aiortc has no low-water event we reach).
_DRAIN_POLL = 0.005


class DataChannels:
    """The data channels of one client: its own two for sending, and all for receiving.

    ``on_packet(packet, reliable)`` is called on the event loop for every
    well-formed DataPacket that arrives; malformed or oversized messages are
    dropped with a log line.
    """

    def __init__(self, on_packet: Callable[[models.DataPacket, bool], None]) -> None:
        self._on_packet = on_packet
        self._own: dict[str, DataChannel] = {}
        self._opened: dict[str, asyncio.Event] = {}
        self.dropped = 0

    @property
    def has_own(self) -> bool:
        """Whether the client's own channels were created (on its publisher PeerConnection)."""
        return bool(self._own)

    def open_own(self, pc: PeerConnection) -> None:
        """Create the client's ``_reliable`` and ``_lossy`` channels on ``pc`` (before its offer)."""
        if self._own:
            return
        for label, channel in (
            (RELIABLE, pc.create_data_channel(RELIABLE, ordered=True)),
            (LOSSY, pc.create_data_channel(LOSSY, ordered=False, max_retransmits=0)),
        ):
            opened = asyncio.Event()
            channel.on_open = opened.set
            self._opened[label] = opened
            self._own[label] = channel
            self._listen(channel)

    def take_remote(self, channel: DataChannel) -> None:
        """A channel the server opened: report what arrives on it."""
        self._listen(channel)

    def _listen(self, channel: DataChannel) -> None:
        reliable = channel.label != LOSSY

        def on_message(data: bytes | str) -> None:
            self._receive(data.encode("utf-8") if isinstance(data, str) else data, reliable)

        channel.on_message = on_message

    def _receive(self, data: bytes, reliable: bool) -> None:
        if len(data) > MAX_DATA_PACKET_BYTES + 4096:
            self._drop(f"a data packet of {len(data)} bytes (at most {MAX_DATA_PACKET_BYTES} expected)")
            return
        packet = models.DataPacket()
        try:
            packet.ParseFromString(data)
        except Exception:
            self._drop(f"an undecodable data packet of {len(data)} bytes")
            return
        self._on_packet(packet, reliable)

    def _drop(self, what: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            logger.warning("dropping %s (%d dropped so far)", what, self.dropped)

    async def send(self, packet: models.DataPacket, *, reliable: bool, timeout: float) -> None:
        """Send ``packet`` on the reliable or lossy channel.

        Waits for the channel to open and for its send queue to drain below
        :data:`SEND_HIGH_WATER`, at most ``timeout`` seconds in all. Raises
        ValueError for a packet over :data:`MAX_DATA_PACKET_BYTES`, ConnectionError
        when the channel is not there, closed, or not ready in time."""
        data = packet.SerializeToString()
        if len(data) > MAX_DATA_PACKET_BYTES:
            raise ValueError(f"data packet: expected at most {MAX_DATA_PACKET_BYTES} bytes, got {len(data)}")
        label = RELIABLE if reliable else LOSSY
        channel = self._own.get(label)
        if channel is None:
            raise ConnectionError(f"data channel {label!r} was never opened")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if channel.ready_state == "connecting":
            try:
                await asyncio.wait_for(self._opened[label].wait(), timeout)
            except TimeoutError:
                raise ConnectionError(f"data channel {label!r} did not open within {timeout} s") from None
        while channel.buffered_amount > SEND_HIGH_WATER and channel.ready_state == "open":
            if loop.time() >= deadline:
                raise ConnectionError(
                    f"data channel {label!r}: {channel.buffered_amount} bytes still queued after {timeout} s"
                )
            await asyncio.sleep(_DRAIN_POLL)
        channel.send(data)
