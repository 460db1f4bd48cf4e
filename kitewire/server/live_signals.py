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

from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from .connection_quality import DownlinkSample, QualityMeter, UplinkSample
from .dynacast import DynacastQuality, subscribed_quality_update
from .participant import Participant
from .room import Room
from .speakers import ActiveSpeakers

__all__ = ["QUALITY_INTERVAL_SECONDS", "TICK_SECONDS", "RoomSignals"]

logger = logging.getLogger("kitewire.server")

#: How often the server's ticker calls :meth:`RoomSignals.tick` (seconds).
TICK_SECONDS = 0.1
#: How often connection quality is measured (livekit-server: 5 s; shorter shows trouble sooner).
QUALITY_INTERVAL_SECONDS = 2.0


class RoomSignals:
    """One room's live signals and what was last sent of each."""

    def __init__(self) -> None:
        self.speakers = ActiveSpeakers()
        self._quality_meters: dict[str, QualityMeter] = {}  # participant sid ->
        self._qualities: dict[str, pb_rtc.ConnectionQualityInfo] = {}  # participant sid -> last measured
        self._quality_at = float("-inf")

    def tick(self, room: Room[Participant], now: float) -> None:
        """Send whatever changed since the last tick."""
        participants = [p for p in room.participants.values() if not p.closed]
        self._send_speakers(participants, now)
        for participant in participants:
            self._send_subscribed_qualities(participant, now)
        if now - self._quality_at >= QUALITY_INTERVAL_SECONDS:
            self._quality_at = now
            self._send_connection_quality(participants)

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

    def _send_connection_quality(self, participants: list[Participant]) -> None:
        active = [p for p in participants if p.state == pb_models.ParticipantInfo.ACTIVE]
        measured: dict[str, pb_rtc.ConnectionQualityInfo] = {}
        for participant in active:
            meter = self._quality_meters.get(participant.sid)
            if meter is None:
                meter = self._quality_meters[participant.sid] = QualityMeter()
            quality, score = meter.measure(_uplink(participant), _downlink(participant))
            info = pb_rtc.ConnectionQualityInfo(participant_sid=participant.sid, score=score)
            info.quality = quality  # type: ignore[assignment]
            measured[participant.sid] = info
        for sid in list(self._quality_meters):
            if sid not in measured:
                del self._quality_meters[sid]
        # As livekit-server: an update only when someone's quality changed or someone is new; each
        # participant hears about itself and about the publishers it receives.
        changed = any(
            sid not in self._qualities or self._qualities[sid].quality != info.quality for sid, info in measured.items()
        )
        self._qualities = measured
        if not changed:
            return
        for participant in active:
            sids = [participant.sid]
            for down in participant.subscriptions.values():
                publisher = down.track.publisher
                if publisher.sid not in sids and not publisher.hidden:
                    sids.append(publisher.sid)
            response = pb_rtc.SignalResponse()
            response.connection_quality.updates.extend(measured[sid] for sid in sids if sid in measured)
            participant.send(response)


def _uplink(participant: Participant) -> list[UplinkSample]:
    samples: list[UplinkSample] = []
    for track in participant.published.values():
        receiver = track.receiver
        if receiver is None:
            continue
        for ssrc, stats in receiver.streams.items():
            expected = stats.cycles + stats.max_seq - stats.base_seq + 1
            # Video's packets leave in bursts of a frame, so its RFC 3550 jitter says more about the
            # sender's pacing than the link: only audio's counts.
            audio = track.kind == "audio"
            jitter = stats.jitter / stats.clock_rate if audio and stats.clock_rate else 0.0
            samples.append(UplinkSample((track.sid, ssrc), expected, stats.received, jitter))
    return samples


def _downlink(participant: Participant) -> list[DownlinkSample]:
    samples: list[DownlinkSample] = []
    for track_sid, down in participant.subscriptions.items():
        if down.transceiver is None:
            continue
        for ssrc, stats in down.transceiver.sender.streams.items():
            samples.append(DownlinkSample((track_sid, ssrc), stats.packets, stats.fraction_lost))
    return samples
