"""Transcriptions: text segments for a participant's track, as livekit.rtc has them."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Transcription", "TranscriptionSegment"]


@dataclass
class TranscriptionSegment:
    """One piece of transcribed speech; ``start_time``/``end_time`` in milliseconds of the track."""

    id: str
    text: str
    start_time: int
    end_time: int
    language: str
    final: bool


@dataclass
class Transcription:
    """Segments transcribed from ``participant_identity``'s track ``track_sid``
    (for :meth:`LocalParticipant.publish_transcription`)."""

    participant_identity: str
    track_sid: str
    segments: list[TranscriptionSegment] = field(default_factory=list)
