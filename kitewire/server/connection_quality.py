"""Connection quality: how well each participant's media gets through, from loss and jitter.

Two kinds of evidence per participant, both already counted by the transport:
what it publishes arrives at the server (each incoming SSRC's RFC 3550
counters: packets expected and received since the last look, and for audio
the interarrival jitter), and what it subscribes to arrives at it (the fraction
lost its receiver reports give for each SSRC the server sends it). The worst
stream decides: below 2 % loss and 30 ms jitter is EXCELLENT, below 6 % and
80 ms GOOD, anything worse POOR. A stream with too few packets in the interval
to judge (a paused layer, silence with DTX) gives no evidence; a participant
with none at all is EXCELLENT (nothing goes wrong for it).

:class:`QualityMeter` keeps one participant's previous counters and works on
numbers; ``live_signals`` feeds it and sends ``ConnectionQualityUpdate``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from livekit.protocol import models as pb_models

__all__ = ["DownlinkSample", "QualityMeter", "UplinkSample", "rate"]

_EXCELLENT_LOSS, _EXCELLENT_JITTER = 0.02, 0.030
_GOOD_LOSS, _GOOD_JITTER = 0.06, 0.080
# Packets a stream must have been expected to carry in an interval to count.
_MIN_EXPECTED = 10
# Streams whose counters a meter keeps (a participant cycling SSRCs must not grow this).
_MAX_STREAMS = 64


@dataclass(frozen=True, slots=True)
class UplinkSample:
    """One incoming SSRC's cumulative counters: packets expected (extended highest sequence
    minus the first, plus one) and received, and its current jitter in seconds."""

    key: Hashable
    expected: int
    received: int
    jitter_seconds: float


@dataclass(frozen=True, slots=True)
class DownlinkSample:
    """One outgoing SSRC: packets sent so far, and the fraction lost (0..1) the subscriber's
    latest receiver report gave for it."""

    key: Hashable
    sent: int
    fraction_lost: float


def rate(loss: float, jitter_seconds: float) -> tuple[int, float]:
    """(ConnectionQuality, score 1..5) for a stream's loss fraction and jitter."""
    loss = min(max(loss, 0.0), 1.0)
    jitter_seconds = max(jitter_seconds, 0.0)
    # A mean opinion score of sorts: 4.5 for a clean link, down with loss (most) and jitter.
    score = max(1.0, min(5.0, 4.5 - 25.0 * loss - 5.0 * jitter_seconds))
    if loss < _EXCELLENT_LOSS and jitter_seconds < _EXCELLENT_JITTER:
        return pb_models.EXCELLENT, score
    if loss < _GOOD_LOSS and jitter_seconds < _GOOD_JITTER:
        return pb_models.GOOD, score
    return pb_models.POOR, score


class QualityMeter:
    """One participant's connection quality, from one look at its streams to the next."""

    def __init__(self) -> None:
        self._previous: dict[Hashable, tuple[int, int]] = {}
        self._previous_sent: dict[Hashable, int] = {}

    def measure(self, uplink: Iterable[UplinkSample], downlink: Iterable[DownlinkSample]) -> tuple[int, float]:
        """(ConnectionQuality, score) since the previous call: the worst stream's."""
        worst: tuple[int, float] = (pb_models.EXCELLENT, 5.0)
        seen: dict[Hashable, tuple[int, int]] = {}
        for sample in uplink:
            if len(seen) >= _MAX_STREAMS:
                break
            seen[sample.key] = (sample.expected, sample.received)
            before = self._previous.get(sample.key)
            if before is None:
                continue  # the first look only sets where counting starts
            expected = sample.expected - before[0]
            received = sample.received - before[1]
            if expected < _MIN_EXPECTED:
                continue
            # Retransmissions and duplicates are counted as received: never below zero loss.
            loss = max(0, expected - received) / expected
            worst = _worse(worst, rate(loss, sample.jitter_seconds))
        sent: dict[Hashable, int] = {}
        for down in downlink:
            if len(sent) >= _MAX_STREAMS:
                break
            sent[down.key] = down.sent
            # Only a stream that carried media lately has a report worth reading.
            if down.sent - self._previous_sent.get(down.key, down.sent) >= _MIN_EXPECTED:
                worst = _worse(worst, rate(down.fraction_lost, 0.0))
        self._previous = seen
        self._previous_sent = sent
        return worst


def _worse(a: tuple[int, float], b: tuple[int, float]) -> tuple[int, float]:
    # POOR (0) < GOOD (1) < EXCELLENT (2); LOST (3) is not given here.
    return (min(a[0], b[0]), min(a[1], b[1]))
