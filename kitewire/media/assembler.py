"""Frame assembly from RTP packets of one SSRC: reordering, duplicates,
16-bit sequence wrap-around, NACK tracking and keyframe requests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AssembledFrame:
    """One complete encoded frame, ready for the decoder."""

    data: bytes
    """Codec bitstream (VP8 frame, or Annex-B access unit for H264)."""
    timestamp: int
    """RTP timestamp of the frame."""
    keyframe: bool
    first_seq: int
    last_seq: int
    arrival_time: float
    """Arrival time of the frame's last packet (the ``arrival_time`` fed in)."""


class FrameAssembler:
    """Jitter buffer for one SSRC; favours latency over smoothness.

    Feed packets with ``push``; each call returns the frames that became
    releasable (complete, and their predecessor was released or given up on).
    ``poll`` gives up on packets missing for longer than ``loss_deadline``
    seconds. ``nack_list`` tells which sequence numbers to NACK now;
    ``keyframe_request`` tells whether to send a PLI. After a loss the
    assembler waits for the next keyframe instead of emitting delta frames
    that depend on what was lost.

    All times are seconds on ``time.monotonic()``'s clock; omitted times mean now.
    """

    def __init__(
        self,
        codec: str,
        *,
        loss_deadline: float = 0.12,
        nack_interval: float = 0.02,
        max_nack_retries: int = 3,
        max_packets: int = 1024,
        keyframe_request_interval: float = 0.25,
    ) -> None:
        raise NotImplementedError

    def push(
        self, seq: int, timestamp: int, marker: bool, payload: bytes, arrival_time: float | None = None
    ) -> list[AssembledFrame]:
        """Add one RTP packet; return frames now ready, in decode order.

        Duplicates and packets older than what was already released are ignored.
        """
        raise NotImplementedError

    def poll(self, now: float | None = None) -> list[AssembledFrame]:
        """Give up on packets missing for longer than ``loss_deadline`` and return
        frames that became releasable because of it."""
        raise NotImplementedError

    def nack_list(self, now: float | None = None) -> list[int]:
        """Sequence numbers to NACK now (each at most ``max_nack_retries`` times,
        spaced by ``nack_interval``)."""
        raise NotImplementedError

    def keyframe_request(self, now: float | None = None) -> bool:
        """True when a PLI should be sent now (rate-limited by ``keyframe_request_interval``)."""
        raise NotImplementedError

    def request_keyframe(self) -> None:
        """Tell the assembler the decoder needs a keyframe: delta frames are
        held back until one arrives and ``keyframe_request`` becomes True."""
        raise NotImplementedError

    @property
    def waiting_for_keyframe(self) -> bool:
        """True while delta frames are being dropped until the next keyframe."""
        raise NotImplementedError

    def __len__(self) -> int:
        """Packets currently buffered."""
        raise NotImplementedError
