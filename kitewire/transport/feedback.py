"""Feedback generators: pluggable pieces that watch incoming RTP and send RTCP on a timer.

In the spirit of pion's interceptors, each concern (RFC 3550 reports,
transport-wide CC) is one object a :class:`~kitewire.transport.PeerConnection`
drives the same way: told the negotiated transceivers after every
negotiation, shown every routed incoming packet if it observes them, and
asked for its packets every ``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from .rtp import RtpHeader

if TYPE_CHECKING:
    from .transceiver import Transceiver

__all__ = ["FeedbackGenerator", "run_feedback"]

logger = logging.getLogger(__name__)


class FeedbackGenerator(Protocol):
    """What a PeerConnection needs of a feedback generator."""

    #: Seconds between :meth:`generate` calls (0 or less: never called).
    interval: float

    def negotiated(self, transceivers: Sequence[Transceiver]) -> None:
        """The transceivers after a negotiation (their extension ids, streams)."""

    def observe(self, header: RtpHeader, arrival: float) -> None:
        """One routed incoming RTP packet, at ``arrival`` (monotonic seconds); runs per packet."""

    def generate(self, now: float) -> list[bytes]:
        """The RTCP packets to send now."""


async def run_feedback(generator: FeedbackGenerator, send: Callable[[bytes, bool], bool]) -> None:
    """Call ``generator.generate`` every interval and send what it returns, until cancelled."""
    while True:
        await asyncio.sleep(generator.interval)
        try:
            for packet in generator.generate(time.monotonic()):
                send(packet, True)
        except Exception:
            logger.exception("%s failed", type(generator).__name__)
