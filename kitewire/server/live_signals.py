"""The signals a room sends on its own, from what its media does: active speakers,
connection quality and dynacast's subscribed qualities.

The server's ticker calls :meth:`RoomSignals.tick` for every room about ten
times a second; each signal's logic lives in its own module (``speakers``,
``connection_quality``, ``dynacast``) and works on numbers, and this module
only reads the room's participants and tracks and sends what those decide.
Sending only queues on each connection, so a client that does not read costs
nobody else.
"""

from __future__ import annotations

import logging

from livekit.protocol import rtc as pb_rtc

from .dynacast import DynacastQuality, subscribed_quality_update
from .participant import Participant
from .room import Room
from .speakers import ActiveSpeakers

__all__ = ["TICK_SECONDS", "RoomSignals"]

logger = logging.getLogger("kitewire.server")

#: How often the server's ticker calls :meth:`RoomSignals.tick` (seconds).
TICK_SECONDS = 0.1


class RoomSignals:
    """One room's live signals and what was last sent of each."""

    def __init__(self) -> None:
        self.speakers = ActiveSpeakers()

    def tick(self, room: Room[Participant], now: float) -> None:
        """Send whatever changed since the last tick."""
        participants = [p for p in room.participants.values() if not p.closed]
        self._send_speakers(participants, now)
        for participant in participants:
            self._send_subscribed_qualities(participant, now)

    def _send_speakers(self, participants: list[Participant], now: float) -> None:
        levels: dict[str, float] = {}
        for participant in participants:
            if participant.hidden:
                continue  # nobody may learn of a hidden participant
            level = 0.0
            for track in participant.published.values():
                meter = track.audio_level
                if meter is not None and not track.info.muted:
                    level = max(level, meter.level(now))
            levels[participant.sid] = level
        speakers = self.speakers.changes(levels, now)
        if speakers is None:
            return
        response = pb_rtc.SignalResponse()
        response.speakers_changed.speakers.extend(speakers)
        for participant in participants:
            participant.send(response)

    @staticmethod
    def _send_subscribed_qualities(publisher: Participant, now: float) -> None:
        for track in publisher.published.values():
            dynacast = track.dynacast
            if dynacast is None or track.closed:
                continue
            wanted = DynacastQuality.wanted(
                None if down.disabled else down.desired_layer for down in track.downtracks.values()
            )
            quality = dynacast.update(wanted, now)
            if quality is None:
                continue
            mime = track.codec.mime_type if track.codec is not None else track.info.mime_type
            publisher.send(subscribed_quality_update(track.sid, mime, quality))
