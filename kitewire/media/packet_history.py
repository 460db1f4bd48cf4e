"""Send-side packet history for answering NACKs with retransmissions.

One history serves every sender: the SDK's publisher, the SFU's downtracks and
the load test's replayed publishers.
"""

from __future__ import annotations

__all__ = ["PacketHistory"]

_SEQ_SPACE = 1 << 16


class PacketHistory:
    """The last packets sent on one SSRC, by 16-bit sequence number.

    A fixed ring of slots indexed by the sequence number's low bits: O(1) per
    packet, bounded memory, and a slot holding another sequence number means
    "too old". The ring holds ``max_packets`` rounded up to a power of two, so
    its size divides the sequence space and the numbers either side of the wrap
    never share a slot. Entries older than ``max_age`` seconds are not returned.
    Packets are opaque bytes (whole RTP packets or payloads, as the caller
    prefers), never copied; times are seconds on one monotonic clock the caller
    chooses.
    """

    __slots__ = ("_mask", "_packets", "_seqs", "_times", "max_age", "max_packets")

    def __init__(self, max_packets: int = 512, max_age: float = 1.0) -> None:
        if not isinstance(max_packets, int) or not 1 <= max_packets <= 0x8000:
            raise ValueError(f"max_packets: expected an int 1..32768, got {max_packets!r}")
        if not isinstance(max_age, (int, float)) or max_age <= 0:
            raise ValueError(f"max_age: expected seconds > 0, got {max_age!r}")
        size = 1 << (max_packets - 1).bit_length()
        #: Packets the ring holds: ``max_packets`` rounded up to a power of two.
        self.max_packets = size
        self.max_age = float(max_age)
        self._mask = size - 1
        self._seqs: list[int] = [-1] * size
        self._packets: list[bytes | None] = [None] * size
        self._times: list[float] = [0.0] * size

    def add(self, seq: int, packet: bytes, now: float) -> None:
        """Remember ``packet`` sent with sequence number ``seq`` at time ``now`` (a resend replaces it)."""
        if not 0 <= seq < _SEQ_SPACE:
            raise ValueError(f"seq: expected an int 0..65535, got {seq!r}")
        slot = seq & self._mask
        self._seqs[slot] = seq
        self._packets[slot] = packet
        self._times[slot] = now

    def get(self, seq: int, now: float) -> bytes | None:
        """The packet sent with ``seq`` if still held and not older than ``max_age``."""
        seq &= 0xFFFF
        slot = seq & self._mask
        if self._seqs[slot] != seq or now - self._times[slot] > self.max_age:
            return None
        return self._packets[slot]

    def get_many(self, seqs: list[int], now: float) -> list[tuple[int, bytes]]:
        """``(seq, packet)`` for each requested seq still held, in request order."""
        found: list[tuple[int, bytes]] = []
        for seq in seqs:
            packet = self.get(seq, now)
            if packet is not None:
                found.append((seq & 0xFFFF, packet))
        return found

    def clear(self) -> None:
        """Forget everything."""
        size = self._mask + 1
        self._seqs = [-1] * size
        self._packets = [None] * size

    def __len__(self) -> int:
        """Packets held (whatever their age)."""
        return sum(1 for seq in self._seqs if seq >= 0)
