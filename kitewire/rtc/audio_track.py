"""Audio tracks: local ones made from an AudioSource and subscribed remote ones."""

from __future__ import annotations

from collections.abc import Callable

from kitewire.frames import TrackKind
from kitewire.frames.audio_frame import AudioFrame

from ._fanout import FrameFanout
from .audio_source import AudioSource
from .track import LocalTrackBase, LocalVideoTrack, RemoteVideoTrack, Track


class AudioTrack(Track):
    """Any audio track."""


class LocalAudioTrack(LocalTrackBase, AudioTrack):
    """An audio track fed by an :class:`AudioSource`, ready to be published."""

    def __init__(self, name: str, source: AudioSource) -> None:
        super().__init__(name, TrackKind.KIND_AUDIO, source._fanout, "kitewire-audio")
        self._source = source

    @staticmethod
    def create_audio_track(name: str, source: AudioSource) -> LocalAudioTrack:
        """Create a track named ``name`` whose audio comes from ``source``."""
        if not isinstance(name, str):
            raise ValueError(f"expected name to be a str, got {type(name).__name__}")
        if not isinstance(source, AudioSource):
            raise ValueError(f"expected source to be an AudioSource, got {type(source).__name__}")
        return LocalAudioTrack(name, source)

    @property
    def source(self) -> AudioSource:
        """The AudioSource feeding this track."""
        return self._source

    def __repr__(self) -> str:
        return f"rtc.LocalAudioTrack(sid={self.sid}, name={self.name})"


class RemoteAudioTrack(AudioTrack):
    """A subscribed audio track of a remote participant.

    The track owns one decode pipeline (set up by the engine); every AudioStream on
    the track shares its decoded audio (48 kHz stereo), each resampling to its own format.
    """

    def __init__(self, sid: str, name: str) -> None:
        super().__init__(sid, name, TrackKind.KIND_AUDIO, FrameFanout[AudioFrame]())

    @property
    def has_sinks(self) -> bool:
        """AudioConsumer: whether any stream reads this track now."""
        return bool(self._fanout.has_sinks)

    @property
    def sinks_watcher(self) -> Callable[[bool], None] | None:
        """AudioConsumer: told when :attr:`has_sinks` flips (the media process starts sending at once)."""
        return self._fanout.sinks_watcher

    @sinks_watcher.setter
    def sinks_watcher(self, watcher: Callable[[bool], None] | None) -> None:
        self._fanout.sinks_watcher = watcher

    def push_audio(self, pcm: bytes, sample_rate: int, num_channels: int, samples: int, timestamp_us: int) -> None:
        """AudioConsumer: decoded PCM from the engine, handed to every stream."""
        if self._fanout.has_sinks:
            self._fanout.push(AudioFrame(bytearray(pcm), sample_rate, num_channels, samples), timestamp_us, 0)

    def _end(self) -> None:
        # unsubscribed, unpublished or disconnected: streams on this track finish
        self._fanout.end()

    def __repr__(self) -> str:
        return f"rtc.RemoteAudioTrack(sid={self.sid}, name={self.name})"


#: livekit's unions of the local and the remote track types
LocalTrack = LocalVideoTrack | LocalAudioTrack
RemoteTrack = RemoteVideoTrack | RemoteAudioTrack
