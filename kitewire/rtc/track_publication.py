"""Track publications: what a participant announced, whether or not we receive it."""

from __future__ import annotations

import asyncio
from typing import Protocol

from livekit.protocol import models

from kitewire.frames import TrackKind, TrackSource, VideoQuality

from .audio_track import LocalAudioTrack, LocalTrack, RemoteAudioTrack, RemoteTrack
from .track import LocalVideoTrack, RemoteVideoTrack, Track


class SubscribingLink(Protocol):
    """What a RemoteTrackPublication asks of the room's session (injected, so no Room privates are called)."""

    def request_subscription(self, publication: RemoteTrackPublication, subscribed: bool) -> None:
        """Ask the server to start or stop sending ``publication``; raises RuntimeError when not connected."""

    def request_video_quality(self, publication: RemoteTrackPublication, quality: int) -> None:
        """Ask the server for a simulcast layer of ``publication``; raises RuntimeError when not connected."""


class SendingStats(Protocol):
    """Where a LocalTrackPublication reads what its engine pipeline sent."""

    def bytes_sent(self, track_sid: str) -> int:
        """RTP payload bytes sent for ``track_sid`` in the current session (0 when not sending)."""


_KIND_FROM_PROTOCOL = {
    models.TrackType.AUDIO: TrackKind.KIND_AUDIO,
    models.TrackType.VIDEO: TrackKind.KIND_VIDEO,
}
_QUALITIES = (VideoQuality.VIDEO_QUALITY_LOW, VideoQuality.VIDEO_QUALITY_MEDIUM, VideoQuality.VIDEO_QUALITY_HIGH)


class TrackPublication:
    """A track as announced by the server (``TrackInfo``), with livekit's properties."""

    def __init__(self, info: models.TrackInfo) -> None:
        self._info = info
        self._track: Track | None = None

    def _update_info(self, info: models.TrackInfo) -> None:
        self._info = info

    def _set_muted(self, muted: bool) -> None:
        self._info.muted = muted

    @property
    def track(self) -> Track | None:
        """The track object, when there is one (subscribed or local)."""
        return self._track

    @property
    def sid(self) -> str:
        """Server-assigned track id ("TR_...")."""
        return str(self._info.sid)

    @property
    def name(self) -> str:
        """Name the publisher gave the track."""
        return str(self._info.name)

    @property
    def kind(self) -> int:
        """``TrackKind`` (livekit.rtc numbering, not the wire's TrackType)."""
        return int(_KIND_FROM_PROTOCOL.get(self._info.type, TrackKind.KIND_UNKNOWN))

    @property
    def source(self) -> int:
        """``TrackSource`` such as ``SOURCE_CAMERA``."""
        return int(self._info.source)

    @property
    def simulcasted(self) -> bool:
        """Whether the publisher sends several layers."""
        return bool(self._info.simulcast)

    @property
    def width(self) -> int:
        """Published width in pixels."""
        return int(self._info.width)

    @property
    def height(self) -> int:
        """Published height in pixels."""
        return int(self._info.height)

    @property
    def mime_type(self) -> str:
        """Codec of the published media, e.g. "video/VP8"."""
        return str(self._info.mime_type)

    @property
    def muted(self) -> bool:
        """Whether the publisher muted the track."""
        return bool(self._info.muted)

    @property
    def audio_features(self) -> list[int]:
        """Audio features of the track (none for video)."""
        return [int(feature) for feature in self._info.audio_features]

    @property
    def frame_metadata_features(self) -> list[int]:
        """Per-frame metadata carried with the track (kitewire carries none)."""
        return []

    @property
    def encryption_type(self) -> int:
        """The track's end-to-end encryption (an EncryptionType: NONE, GCM)."""
        return int(self._info.encryption)


class LocalTrackPublication(TrackPublication):
    """A track this client published."""

    def __init__(self, info: models.TrackInfo, track: LocalTrack, stats: SendingStats) -> None:
        super().__init__(info)
        self._track = track
        self._stats = stats
        self._first_subscription: asyncio.Future[None] = asyncio.get_event_loop().create_future()

    @property
    def track(self) -> LocalTrack | None:
        """The published local track (None after unpublish)."""
        track = self._track
        return track if isinstance(track, LocalVideoTrack | LocalAudioTrack) else None

    @property
    def bytes_sent(self) -> int:
        """RTP payload bytes sent for this publication since it was (re)published.

        A kitewire addition (livekit.rtc reports this through ``get_stats``).
        """
        return self._stats.bytes_sent(self.sid)

    async def wait_for_subscription(self) -> None:
        """Wait until some participant subscribes to this track."""
        await asyncio.shield(self._first_subscription)

    def _note_subscribed(self) -> None:
        if not self._first_subscription.done():
            self._first_subscription.set_result(None)

    def _release(self) -> None:
        """Unpublished: the publication no longer holds its track."""
        self._track = None

    def __repr__(self) -> str:
        return f"rtc.LocalTrackPublication(sid={self.sid}, name={self.name}, kind={self.kind}, source={self.source})"


class RemoteTrackPublication(TrackPublication):
    """A track published by a remote participant."""

    def __init__(self, info: models.TrackInfo, link: SubscribingLink, participant_sid: str) -> None:
        super().__init__(info)
        self._link = link
        self._participant_sid = participant_sid
        self._subscribed = False
        self._desired_quality: int = VideoQuality.VIDEO_QUALITY_HIGH

    @property
    def track(self) -> RemoteTrack | None:
        """The subscribed track, or None while not subscribed."""
        track = self._track
        return track if isinstance(track, RemoteVideoTrack | RemoteAudioTrack) else None

    @property
    def subscribed(self) -> bool:
        """Whether the track is currently subscribed."""
        return self._subscribed

    def set_subscribed(self, subscribed: bool) -> None:
        """Ask the server to start or stop sending this track."""
        if not isinstance(subscribed, bool):
            raise ValueError(f"expected subscribed to be a bool, got {subscribed!r}")
        self._link.request_subscription(self, subscribed)

    def set_video_quality(self, quality: int) -> None:
        """Ask for a simulcast layer: ``VideoQuality.VIDEO_QUALITY_LOW/MEDIUM/HIGH``."""
        if self.kind != TrackKind.KIND_VIDEO:
            raise ValueError(
                f"expected a video publication for set_video_quality, got kind {self.kind} (sid={self.sid})"
            )
        if not self.simulcasted:
            raise ValueError(f"expected a simulcasted publication for set_video_quality (sid={self.sid})")
        if int(quality) not in [int(q) for q in _QUALITIES]:
            raise ValueError(f"expected a VideoQuality (0=LOW, 1=MEDIUM, 2=HIGH), got {quality!r}")
        self._desired_quality = int(quality)
        self._link.request_video_quality(self, int(quality))

    def _attach(self, track: RemoteTrack | None) -> None:
        """Subscribed: media flows into ``track`` (None keeps the current track, after a rejoin)."""
        if track is not None:
            self._track = track
        self._subscribed = True

    def _detach(self) -> RemoteTrack | None:
        """Unsubscribed: returns the track that was attached, if any."""
        track = self.track
        self._track = None
        self._subscribed = False
        return track

    def __repr__(self) -> str:
        return f"rtc.RemoteTrackPublication(sid={self.sid}, name={self.name}, kind={self.kind}, source={self.source})"


__all__ = ["LocalTrackPublication", "RemoteTrackPublication", "TrackPublication", "TrackSource"]
