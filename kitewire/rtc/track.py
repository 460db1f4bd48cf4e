"""Tracks: local video tracks made from a VideoSource and remote video tracks."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from kitewire.frames import TrackKind
from kitewire.frames.enums import EnumTypeWrapper

from ._fanout import FrameFanout, FrameSink

if TYPE_CHECKING:
    from .stats import RtcStats
    from .video_source import VideoSource

StatsLink = Callable[[str], Awaitable[list["RtcStats"]]]

_local_track_numbers = itertools.count(1)


class StreamState(EnumTypeWrapper):
    """Whether a remote track's media is flowing (livekit numbering)."""

    STATE_UNKNOWN = 0
    STATE_ACTIVE = 1
    STATE_PAUSED = 2


class Track:
    """Base of every track: a named media stream with a server-assigned sid."""

    def __init__(self, sid: str, name: str, kind: int, fanout: FrameFanout) -> None:
        self._sid = sid
        self._name = name
        self._kind = kind
        self._muted = False
        self._stream_state = StreamState.STATE_ACTIVE
        self._fanout = fanout
        # set by the room while the track is published or subscribed
        self._stats_link: StatsLink | None = None

    async def get_stats(self) -> list[RtcStats]:
        """WebRTC statistics of this track's streams, in livekit's ``rtc.stats`` shape
        (see :mod:`kitewire.rtc.stats`); empty while the track is not published or
        subscribed."""
        link = self._stats_link
        if link is None or not self._sid:
            return []
        return await link(self._sid)

    @property
    def sid(self) -> str:
        """Server-assigned id ("TR_..."), empty for a local track never published."""
        return self._sid

    @property
    def name(self) -> str:
        """Name given when the track was created or published."""
        return self._name

    @property
    def kind(self) -> int:
        """``TrackKind.KIND_VIDEO`` for every track kitewire handles."""
        return self._kind

    @property
    def stream_state(self) -> int:
        """``StreamState`` of the track's media."""
        return self._stream_state

    @property
    def muted(self) -> bool:
        """Whether the publisher muted the track."""
        return self._muted

    def _set_muted(self, muted: bool) -> None:
        self._muted = muted


class VideoTrack(Track):
    """Any video track."""


class LocalVideoTrack(VideoTrack):
    """A video track fed by a :class:`VideoSource`, ready to be published."""

    def __init__(self, name: str, source: VideoSource) -> None:
        super().__init__("", name, TrackKind.KIND_VIDEO, source._fanout)
        self._source = source
        # client-side id used in AddTrackRequest before the server assigns a sid
        self._cid = f"kitewire-video-{next(_local_track_numbers)}"
        # set by the room while published: tells the publish pipeline and the server
        self._mute_listener: Callable[[bool], None] | None = None

    @staticmethod
    def create_video_track(name: str, source: VideoSource) -> LocalVideoTrack:
        """Create a track named ``name`` whose frames come from ``source``."""
        from .video_source import VideoSource

        if not isinstance(name, str):
            raise ValueError(f"expected name to be a str, got {type(name).__name__}")
        if not isinstance(source, VideoSource):
            raise ValueError(f"expected source to be a VideoSource, got {type(source).__name__}")
        return LocalVideoTrack(name, source)

    @property
    def source(self) -> VideoSource:
        """The VideoSource feeding this track."""
        return self._source

    def mute(self) -> None:
        """Stop sending this track's media (frames captured meanwhile are dropped)."""
        self._set_muted(True)

    def unmute(self) -> None:
        """Resume sending this track's media."""
        self._set_muted(False)

    def _set_muted(self, muted: bool) -> None:
        if self._muted == muted:
            return
        super()._set_muted(muted)
        if self._mute_listener is not None:
            self._mute_listener(muted)

    def _published_as(self, sid: str, sink: FrameSink, on_mute_changed: Callable[[bool], None]) -> None:
        """Published (again) as ``sid``: frames go to ``sink``, mute changes to ``on_mute_changed``."""
        self._sid = sid
        self._fanout.add(sink)
        self._mute_listener = on_mute_changed

    def _unpublished(self, sink: FrameSink | None) -> None:
        """No longer sent: ``sink`` (if it is still attached) gets no more frames."""
        if sink is not None:
            self._fanout.remove(sink)
        self._mute_listener = None

    def __repr__(self) -> str:
        return f"rtc.LocalVideoTrack(sid={self.sid}, name={self.name})"


class RemoteVideoTrack(VideoTrack):
    """A subscribed video track of a remote participant.

    The track owns one decode pipeline (set up by the engine); every VideoStream on
    the track shares its decoded frames.
    """

    def __init__(self, sid: str, name: str) -> None:
        super().__init__(sid, name, TrackKind.KIND_VIDEO, FrameFanout())

    def _end(self) -> None:
        # unsubscribed, unpublished or disconnected: streams on this track finish
        self._fanout.end()

    def __repr__(self) -> str:
        return f"rtc.RemoteVideoTrack(sid={self.sid}, name={self.name})"


LocalTrack = LocalVideoTrack
RemoteTrack = RemoteVideoTrack
