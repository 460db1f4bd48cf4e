"""Lip sync of one remote media stream: its video held back to its audio's lateness.

libwebrtc synchronises the audio and the video tracks of one media stream (one a=msid
stream id; livekit servers give a participant's camera and microphone the same one)
from both tracks' RTCP sender reports, which put each RTP timestamp on the sender's
wall clock: it measures how late, behind its capture, each track is played, and raises
the video playout delay to the audio's (or the audio's to the video's) within bounds.
Here audio is never held (a held audio stream keeps the extra latency for good: it
plays on in real time); a picture that would leave before the audio captured with it
waits until it is as late as the audio, at most ``max_hold``. Audio being later than
video is the usual case: it waits in a jitter buffer and comes in 20 ms frames.
"""

from __future__ import annotations

import collections
import time

from kitewire.transport.rtcp import SenderReport, ntp_to_unix

__all__ = ["SenderClock", "StreamSync"]

# The longest a picture is held for its audio (libwebrtc bounds its sync delay too).
_MAX_HOLD = 0.2
# How many of the audio's latest lateness figures the hold follows (their median: a
# concealed or batched frame does not jolt the picture).
_AUDIO_WINDOW = 25
# Lateness figures older than this (seconds) no longer describe the audio (it paused or ended).
_AUDIO_STALE = 1.0


class SenderClock:
    """One received stream's RTP timestamps on its sender's wall clock, from its sender reports."""

    def __init__(self, clock_rate: int) -> None:
        if clock_rate <= 0:
            raise ValueError(f"expected a positive RTP clock rate, got {clock_rate}")
        self.clock_rate = clock_rate
        self._anchor: tuple[int, int, float] | None = None  # (ssrc, rtp timestamp, Unix time)

    def on_sender_report(self, report: SenderReport) -> None:
        """Take the report's RTP <-> NTP pair (the newest report wins)."""
        self._anchor = (report.ssrc, report.rtp_timestamp, ntp_to_unix(report.ntp_time))

    def capture_time(self, ssrc: int, rtp_timestamp: int) -> float | None:
        """The sender's wall-clock time (Unix seconds) of ``rtp_timestamp``, None before a report of ``ssrc``."""
        anchor = self._anchor
        if anchor is None or anchor[0] != ssrc:
            return None
        delta = (rtp_timestamp - anchor[1]) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 0x100000000
        return anchor[2] + delta / self.clock_rate


class StreamSync:
    """The audio and the video of one remote media stream, played out together.

    The audio pipeline reports each piece it hands over (:meth:`audio_played`); the video
    pipeline asks, for each decoded picture, how long to hold it (:meth:`video_hold`).
    Lateness is our clock minus the sender's capture time; the clocks' offset is the
    same for both tracks and cancels out.
    """

    def __init__(self, max_hold: float = _MAX_HOLD) -> None:
        if not 0 <= max_hold <= 1:
            raise ValueError(f"expected max_hold between 0 and 1 s, got {max_hold}")
        self.max_hold = max_hold
        self._audio_late: collections.deque[float] = collections.deque(maxlen=_AUDIO_WINDOW)
        self._audio_at = float("-inf")
        #: pictures held, and for how long in all (seconds)
        self.pictures_held = 0
        self.seconds_held = 0.0

    def audio_played(self, captured_end: float, now: float | None = None) -> None:
        """Audio whose last sample was captured at ``captured_end`` (sender's Unix time) was handed over."""
        now = time.time() if now is None else now
        self._audio_late.append(now - captured_end)
        self._audio_at = now

    def audio_lateness(self, now: float | None = None) -> float | None:
        """The audio's recent lateness (median, seconds), None without recent audio."""
        now = time.time() if now is None else now
        if not self._audio_late or now - self._audio_at > _AUDIO_STALE:
            return None
        ordered = sorted(self._audio_late)
        return ordered[len(ordered) // 2]

    def video_hold(self, captured: float, now: float | None = None) -> float:
        """Seconds to hold a picture captured at ``captured`` so it leaves as late as its audio."""
        now = time.time() if now is None else now
        audio = self.audio_lateness(now)
        if audio is None:
            return 0.0
        hold = min(self.max_hold, audio - (now - captured))
        if hold <= 0:
            return 0.0
        self.pictures_held += 1
        self.seconds_held += hold
        return hold
