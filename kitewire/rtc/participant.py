"""Participants: the local one (publishes) and remote ones (whose tracks we receive)."""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from ._participant_data import DataLink, LocalDataMixin
from ._participant_data import PublishDataError as PublishDataError
from ._participant_data import PublishDTMFError as PublishDTMFError
from ._participant_data import PublishTranscriptionError as PublishTranscriptionError
from ._types import ConnectionQuality, PublishTrackError, TrackPublishOptions

# livekit.rtc.participant exports these too; programs import them from here
from ._types import DegradationPreference as DegradationPreference
from ._types import UnpublishTrackError as UnpublishTrackError
from .audio_track import LocalAudioTrack, LocalTrack
from .track import LocalVideoTrack, Track
from .track_publication import (
    LocalTrackPublication,
    RemoteTrackPublication,
    TrackPublication,
)

PublicationT = TypeVar("PublicationT", bound=TrackPublication)


class PublishingLink(Protocol):
    """What a LocalParticipant asks of the room's session (injected, so no Room privates are called)."""

    async def publish_track(self, track: LocalTrack, options: TrackPublishOptions) -> LocalTrackPublication:
        """Negotiate ``track`` with the server; raises PublishTrackError."""

    async def unpublish_track(self, track_sid: str) -> None:
        """Stop publishing ``track_sid``; raises UnpublishTrackError."""


class ParticipantLink(PublishingLink, DataLink, Protocol):
    """Everything a LocalParticipant asks of the room's session."""

    def set_subscription_permissions(self, permission: signal_pb.SubscriptionPermission) -> None:
        """Tell the server who may subscribe to our tracks (kept for rejoins)."""


@dataclass
class ParticipantTrackPermission:
    """Which of our tracks one participant may subscribe to (livekit's message fields)."""

    participant_identity: str = ""
    allow_all: bool = False
    """All our tracks, now and later."""
    allowed_track_sids: list[str] = field(default_factory=list)


class _TrackFollower(Protocol):
    """A consumer that follows whichever track a participant has for one source."""

    def _follow_attach(self, track: Track) -> None: ...

    def _follow_detach(self, track: Track) -> None: ...

    def _follow_end(self) -> None: ...


class Participant:
    """Common properties of local and remote participants (livekit.rtc names)."""

    def __init__(self, info: models.ParticipantInfo) -> None:
        self._info = info
        self._connection_quality = ConnectionQuality.QUALITY_UNKNOWN
        # weak: a VideoStream dropped without aclose() stops following
        self._followers: weakref.WeakKeyDictionary[_TrackFollower, int] = weakref.WeakKeyDictionary()

    def _update_info(self, info: models.ParticipantInfo) -> None:
        self._info = info

    def _departed_info(self) -> models.ParticipantInfo:
        """This participant's last info, marked as disconnected."""
        gone = models.ParticipantInfo()
        gone.CopyFrom(self._info)
        gone.state = models.ParticipantInfo.DISCONNECTED
        return gone

    def _set_disconnect_reason(self, reason: int) -> None:
        self._info.disconnect_reason = reason  # type: ignore[assignment]

    @property
    def track_publications(self) -> Mapping[str, TrackPublication]:
        """Publications of this participant by track sid."""
        raise NotImplementedError

    @property
    def sid(self) -> str:
        """Server-assigned participant id ("PA_...")."""
        return str(self._info.sid)

    @property
    def identity(self) -> str:
        """Identity from the access token."""
        return str(self._info.identity)

    @property
    def name(self) -> str:
        """Display name."""
        return str(self._info.name)

    @property
    def metadata(self) -> str:
        """Application metadata string."""
        return str(self._info.metadata)

    @property
    def attributes(self) -> dict[str, str]:
        """Application key/value attributes."""
        return dict(self._info.attributes)

    @property
    def kind(self) -> int:
        """Participant kind (0 standard, 1 ingress, 2 egress, 3 sip, 4 agent)."""
        return int(self._info.kind)

    @property
    def state(self) -> int:
        """Participant state (0 joining, 1 joined, 2 active, 3 disconnected)."""
        return int(self._info.state)

    @property
    def kind_details(self) -> list[int]:
        """Refinements of ``kind`` reported by the server."""
        return [int(detail) for detail in getattr(self._info, "kind_details", [])]

    @property
    def permissions(self) -> models.ParticipantPermission:
        """What the participant may do (publish, subscribe, ...), from its token."""
        return self._info.permission

    @property
    def connection_quality(self) -> ConnectionQuality:
        """The quality the server last reported for this participant (``QUALITY_UNKNOWN`` before any report)."""
        return self._connection_quality

    def _set_connection_quality(self, quality: ConnectionQuality) -> None:
        self._connection_quality = quality

    @property
    def joined_at(self) -> datetime.datetime | None:
        """When the participant joined, or None if unknown."""
        if not self._info.joined_at:
            return None
        return datetime.datetime.fromtimestamp(self._info.joined_at, tz=datetime.UTC)

    @property
    def disconnect_reason(self) -> int | None:
        """A ``DisconnectReason`` once the participant left, else None."""
        reason = int(self._info.disconnect_reason)
        return reason or None

    # -- followers: VideoStream.from_participant ---------------------------------

    def _current_track_for_source(self, source: int) -> Track | None:
        for publication in self.track_publications.values():
            if publication.source == source and publication.track is not None:
                return publication.track
        return None

    def _add_follower(self, follower: _TrackFollower, source: int) -> None:
        self._followers[follower] = source
        track = self._current_track_for_source(source)
        if track is not None:
            follower._follow_attach(track)

    def _remove_follower(self, follower: _TrackFollower) -> None:
        self._followers.pop(follower, None)

    def _track_available(self, track: Track, source: int) -> None:
        for follower, wanted in list(self._followers.items()):
            if wanted == source:
                follower._follow_attach(track)

    def _track_gone(self, track: Track, source: int) -> None:
        for follower, wanted in list(self._followers.items()):
            if wanted == source:
                follower._follow_detach(track)

    def _end_followers(self) -> None:
        followers = list(self._followers)
        self._followers.clear()
        for follower in followers:
            follower._follow_end()


class _Publications(Generic[PublicationT]):
    """The session's way to change a participant's publications (readers use ``track_publications``)."""

    _track_publications: dict[str, PublicationT]

    def _publication(self, track_sid: str) -> PublicationT | None:
        return self._track_publications.get(track_sid)

    def _add_publication(self, publication: PublicationT) -> None:
        self._track_publications[publication.sid] = publication

    def _pop_publication(self, track_sid: str) -> PublicationT | None:
        return self._track_publications.pop(track_sid, None)


class LocalParticipant(Participant, _Publications[LocalTrackPublication], LocalDataMixin):
    """This client in the room: publishes tracks, sends data, calls and serves RPC, streams text and bytes."""

    def __init__(self, info: models.ParticipantInfo, link: ParticipantLink) -> None:
        super().__init__(info)
        self._link = link
        self._data_link = link
        self._track_publications: dict[str, LocalTrackPublication] = {}

    @property
    def track_publications(self) -> Mapping[str, LocalTrackPublication]:
        """Tracks this client published, by track sid."""
        return self._track_publications

    async def publish_track(
        self,
        track: LocalTrack,
        options: TrackPublishOptions = TrackPublishOptions(),  # noqa: B008 (livekit.rtc's signature)
    ) -> LocalTrackPublication:
        """Publish ``track`` and return its publication once the server accepted it.

        Raises PublishTrackError if the room is not connected or the server refuses.
        """
        if not isinstance(track, LocalVideoTrack | LocalAudioTrack):
            raise ValueError(f"expected a LocalVideoTrack or LocalAudioTrack, got {type(track).__name__}")
        if not isinstance(options, TrackPublishOptions):
            raise ValueError(f"expected options to be a TrackPublishOptions, got {type(options).__name__}")
        for existing in self._track_publications.values():
            if existing.track is track:
                raise PublishTrackError(f"track {track.name!r} is already published as {existing.sid}")
        return await self._link.publish_track(track, options)

    async def unpublish_track(self, track_sid: str) -> None:
        """Stop publishing the track with sid ``track_sid``."""
        if track_sid not in self._track_publications:
            raise ValueError(
                f"expected the sid of a published track (one of {sorted(self._track_publications)}), got {track_sid!r}"
            )
        await self._link.unpublish_track(track_sid)

    def set_track_subscription_permissions(
        self,
        *,
        allow_all_participants: bool,
        participant_permissions: list[ParticipantTrackPermission] | None = None,
    ) -> None:
        """Let everyone subscribe to our tracks, or only the participants and tracks listed
        (``participant_permissions``, ignored when ``allow_all_participants``). The server
        enforces it: a subscriber not allowed gets no media of the track."""
        permission = signal_pb.SubscriptionPermission(all_participants=bool(allow_all_participants))
        for entry in participant_permissions or []:
            if not isinstance(entry, ParticipantTrackPermission) or not entry.participant_identity:
                raise ValueError(
                    f"participant_permissions: expected ParticipantTrackPermissions naming a participant, got {entry!r}"
                )
            permission.track_permissions.add(
                participant_identity=entry.participant_identity,
                all_tracks=entry.allow_all,
                track_sids=list(entry.allowed_track_sids),
            )
        self._link.set_subscription_permissions(permission)

    def __repr__(self) -> str:
        return f"rtc.LocalParticipant(sid={self.sid}, identity={self.identity}, name={self.name})"


class RemoteParticipant(Participant, _Publications[RemoteTrackPublication]):
    """Another participant in the room."""

    def __init__(self, info: models.ParticipantInfo) -> None:
        super().__init__(info)
        self._track_publications: dict[str, RemoteTrackPublication] = {}

    @property
    def track_publications(self) -> Mapping[str, RemoteTrackPublication]:
        """Tracks this participant published, by track sid."""
        return self._track_publications

    def __repr__(self) -> str:
        return f"rtc.RemoteParticipant(sid={self.sid}, identity={self.identity}, name={self.name})"
