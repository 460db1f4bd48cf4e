"""``kitewire.rtc.video_frame``: where livekit.rtc keeps ``VideoFrame`` (kitewire's lives
in :mod:`kitewire.frames`)."""

from kitewire.frames import VideoFrame

__all__ = ["VideoFrame"]
