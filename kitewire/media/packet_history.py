"""Send-side packet history for answering NACKs with retransmissions."""

from __future__ import annotations

from collections import OrderedDict


class PacketHistory:
    """The last packets sent on one SSRC, by 16-bit sequence number.

    Bounded by ``max_packets`` and by ``max_age`` seconds. Packets are opaque
    bytes (whole RTP packets or payloads, as the caller prefers). Times are
    seconds on one monotonic clock chosen by the caller.
    """

    def __init__(self, max_packets: int = 512, max_age: float = 1.0) -> None:
        if not isinstance(max_packets, int) or not 1 <= max_packets <= 0x8000:
            raise ValueError(f"max_packets: expected an int 1..32768, got {max_packets!r}")
        if not isinstance(max_age, (int, float)) or max_age <= 0:
            raise ValueError(f"max_age: expected seconds > 0, got {max_age!r}")
        self.max_packets = max_packets
        self.max_age = float(max_age)
        # Insertion order is send order, so the oldest entry is always first.
        self._packets: OrderedDict[int, tuple[float, bytes]] = OrderedDict()

    def add(self, seq: int, packet: bytes, now: float) -> None:
        """Remember ``packet`` sent with sequence number ``seq`` at time ``now``.

        A seq already held (after a wrap, or a resend) is replaced.
        """
        if not isinstance(seq, int) or not 0 <= seq <= 0xFFFF:
            raise ValueError(f"seq: expected an int 0..65535, got {seq!r}")
        packets = self._packets
        if seq in packets:
            del packets[seq]
        packets[seq] = (now, packet)
        while len(packets) > self.max_packets:
            packets.popitem(last=False)
        self._expire(now)

    def _expire(self, now: float) -> None:
        packets = self._packets
        oldest_allowed = now - self.max_age
        while packets:
            seq, (sent_at, _) = next(iter(packets.items()))
            if sent_at >= oldest_allowed:
                break
            del packets[seq]

    def get(self, seq: int, now: float) -> bytes | None:
        """The packet sent with ``seq`` if still held and not older than ``max_age``."""
        entry = self._packets.get(seq & 0xFFFF)
        if entry is None or now - entry[0] > self.max_age:
            return None
        return entry[1]

    def get_many(self, seqs: list[int], now: float) -> list[tuple[int, bytes]]:
        """``(seq, packet)`` for each requested seq still held, in request order."""
        self._expire(now)
        found: list[tuple[int, bytes]] = []
        for seq in seqs:
            entry = self._packets.get(seq & 0xFFFF)
            if entry is not None:
                found.append((seq & 0xFFFF, entry[1]))
        return found

    def clear(self) -> None:
        """Forget everything."""
        self._packets.clear()

    def __len__(self) -> int:
        return len(self._packets)
