"""Mapping between a sender's capture timestamps and RTP header extension values."""

from __future__ import annotations

# abs-capture-time carries an NTP (1900 epoch) clock; livekit timestamps are on the
# Unix epoch, so the difference is added on send and removed on receive. That keeps
# any non-negative timestamp_us round-tripping exactly, and matches libwebrtc peers.
NTP_UNIX_OFFSET_US = 2_208_988_800 * 1_000_000

RTP_VIDEO_CLOCK_RATE = 90_000


def capture_us_to_ntp_us(timestamp_us: int) -> int:
    """Sender's capture time (Unix µs) -> abs-capture-time value (NTP µs)."""
    return timestamp_us + NTP_UNIX_OFFSET_US


def ntp_us_to_capture_us(ntp_us: int) -> int:
    """abs-capture-time value (NTP µs) -> capture time (Unix µs), never negative."""
    return max(0, ntp_us - NTP_UNIX_OFFSET_US)


def rotation_to_degrees(rotation: int) -> int:
    """livekit VideoRotation (0..3) -> degrees for the video-orientation extension."""
    return (int(rotation) & 3) * 90


def degrees_to_rotation(degrees: int) -> int:
    """Degrees (0/90/180/270) -> livekit VideoRotation (0..3)."""
    return (int(degrees) // 90) & 3
