"""Active speakers: who is talking, from the audio level publishers put in their packets.

libwebrtc writes the RFC 6464 audio level (``urn:ietf:params:rtp-hdrext:ssrc-audio-level``:
0 is the loudest, 127 silence, in -dBov) into every audio packet it sends. An
:class:`AudioLevelMeter` per published audio track keeps the last fraction of a
second of them; a track speaks while enough of that window was louder than a
threshold (livekit-server's defaults: -35 dBov for 40 % of the time), so a
word or two starts it and a pause of a few hundred milliseconds ends it.
:class:`ActiveSpeakers` per room turns the participants' levels into the
``SpeakerInfo`` lists of a ``SpeakersChanged``: sent when someone starts or
stops, and when a level moves, at most twice a second.

Both work on numbers only; ``live_signals`` feeds them from the room.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

from livekit.protocol import models as pb_models

__all__ = ["ActiveSpeakers", "AudioLevelMeter", "linear_level"]

# livekit-server's defaults: louder than -35 dBov for at least 40 % of the window is speaking.
_ACTIVE_LEVEL = 35
_MIN_ACTIVE_FRACTION = 0.4
# The window the fraction is measured over (seconds): short, so changes show within 500 ms.
_WINDOW_SECONDS = 0.3
# Packets remembered (20 ms opus packets: 15 fill the window; a sender of 2.5 ms packets gets the last 64).
_MAX_SAMPLES = 64
# A packet's duration is its RTP timestamp step, taken as at most this (a gap in the stream is not speech).
_MAX_PACKET_MS = 120.0
_DEFAULT_PACKET_MS = 20.0
# Levels are sent in steps of 1/8 (small changes would otherwise make a message per tick).
_LEVEL_STEPS = 8
# A level-only change is sent at most this often (seconds); a start or stop at once.
_LEVEL_UPDATE_SECONDS = 0.5


def linear_level(dbov: float) -> float:
    """An RFC 6464 level (-dBov) as a linear amplitude, 1.0 at 0 dBov."""
    return float(math.pow(10.0, -dbov / 20.0))


class AudioLevelMeter:
    """How loud one audio track is, from the levels of its recent packets."""

    __slots__ = ("_highest_ts", "_samples", "clock_rate")

    def __init__(self, clock_rate: int = 48000) -> None:
        if clock_rate <= 0:
            raise ValueError(f"AudioLevelMeter: expected a positive clock rate, got {clock_rate}")
        self.clock_rate = clock_rate
        # (arrival time, duration in ms, level) of recent packets, oldest first.
        self._samples: deque[tuple[float, float, int]] = deque(maxlen=_MAX_SAMPLES)
        self._highest_ts: int | None = None

    def observe(self, level: int, rtp_timestamp: int, now: float) -> None:
        """One packet's level (0..127; higher values are clamped) and RTP timestamp, arriving at ``now``."""
        highest = self._highest_ts
        if highest is None:
            duration = _DEFAULT_PACKET_MS
        else:
            step = (rtp_timestamp - highest) & 0xFFFFFFFF
            if step >= 0x80000000:
                return  # late or repeated (the timestamp wraps every 24.9 h at 48 kHz)
            duration = min(step * 1000.0 / self.clock_rate, _MAX_PACKET_MS)
        self._highest_ts = rtp_timestamp
        self._samples.append((now, duration, min(max(level, 0), 127)))

    def level(self, now: float) -> float:
        """The linear level (0..1) while the track speaks, else 0.0."""
        samples = self._samples
        start = now - _WINDOW_SECONDS
        while samples and samples[0][0] < start:
            samples.popleft()
        window_ms = _WINDOW_SECONDS * 1000.0
        loud_ms = 0.0
        loudest = 127
        for _, duration, level in samples:
            if level <= _ACTIVE_LEVEL:
                loud_ms += duration
                loudest = min(loudest, level)
        if loud_ms < _MIN_ACTIVE_FRACTION * window_ms:
            return 0.0
        # Talking through the whole window reads as the loudest level; part of it, quieter.
        adjusted = loudest - 20.0 * math.log10(min(loud_ms, window_ms) / window_ms)
        return min(1.0, linear_level(adjusted))


class ActiveSpeakers:
    """One room's speakers as last told to its participants."""

    def __init__(self) -> None:
        self._sent: dict[str, float] = {}  # participant sid -> level last sent (active ones only)
        self._level_sent_at = float("-inf")

    @property
    def speaking(self) -> Mapping[str, float]:
        """The speakers last announced, by participant sid, with their levels."""
        return self._sent

    def changes(self, levels: Mapping[str, float], now: float) -> list[pb_models.SpeakerInfo] | None:
        """The SpeakerInfo list to send for the participants' current ``levels`` (sid -> level, 0 when
        silent), or None when nothing changed enough to tell.

        The list holds every active speaker, loudest first, then the ones who stopped
        (``active=False``, level 0): livekit's SDKs take it either as a delta or as the whole set.
        """
        active = {sid: math.ceil(level * _LEVEL_STEPS) / _LEVEL_STEPS for sid, level in levels.items() if level > 0}
        level_only = active.keys() == self._sent.keys()
        if level_only and (active == self._sent or now - self._level_sent_at < _LEVEL_UPDATE_SECONDS):
            return None
        speakers = [
            pb_models.SpeakerInfo(sid=sid, level=level, active=True)
            for sid, level in sorted(active.items(), key=lambda item: -item[1])
        ]
        speakers.extend(
            pb_models.SpeakerInfo(sid=sid, level=0.0, active=False) for sid in self._sent if sid not in active
        )
        self._sent = active
        self._level_sent_at = now
        return speakers
