"""Send-side packet history for answering NACKs with retransmissions."""

from __future__ import annotations


class PacketHistory:
    """The last packets sent on one SSRC, by 16-bit sequence number.

    Bounded by ``max_packets`` and by ``max_age`` seconds. Packets are opaque
    bytes (whole RTP packets or payloads, as the caller prefers).
    """

    def __init__(self, max_packets: int = 512, max_age: float = 1.0) -> None:
        raise NotImplementedError

    def add(self, seq: int, packet: bytes, now: float) -> None:
        """Remember ``packet`` sent with sequence number ``seq`` at time ``now``."""
        raise NotImplementedError

    def get(self, seq: int, now: float) -> bytes | None:
        """The packet sent with ``seq`` if still held and not older than ``max_age``."""
        raise NotImplementedError

    def get_many(self, seqs: list[int], now: float) -> list[tuple[int, bytes]]:
        """``(seq, packet)`` for each requested seq still held, in request order."""
        raise NotImplementedError

    def clear(self) -> None:
        """Forget everything."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError
