"""AVSynchronizer: play a video source and an audio source in step (file playback, generated avatars)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from kitewire.frames import VideoFrame
from kitewire.frames.audio_frame import AudioFrame

from .audio_source import AudioSource
from .video_source import VideoSource


class AVSynchronizer:
    """Keeps video frames in step with the audio they were pushed with (livekit's API).

    Push frames in media order (``await av_sync.push(video_frame)``, ``await
    av_sync.push(audio_frame)``, ...). Audio goes to the AudioSource, whose queue plays
    out in real time; each video frame is held in a bounded queue and captured when the
    audio of the same media time is played out (the media time of the n-th video frame
    is n / ``video_fps``, that of audio the samples pushed so far). Without audio, video
    is paced at ``video_fps``. A full video queue makes ``push`` wait (back-pressure),
    so a producer faster than real time is slowed to it.
    """

    def __init__(
        self,
        *,
        audio_source: AudioSource,
        video_source: VideoSource,
        video_fps: float,
        video_queue_size_ms: float = 100,
        _max_delay_tolerance_ms: float = 300,
    ) -> None:
        if not isinstance(audio_source, AudioSource):
            raise ValueError(f"expected audio_source to be an AudioSource, got {type(audio_source).__name__}")
        if not isinstance(video_source, VideoSource):
            raise ValueError(f"expected video_source to be a VideoSource, got {type(video_source).__name__}")
        if isinstance(video_fps, bool) or not isinstance(video_fps, int | float) or not 0 < video_fps <= 240:
            raise ValueError(f"expected video_fps between 0 and 240, got {video_fps!r}")
        self._audio_source = audio_source
        self._video_source = video_source
        self._video_fps = float(video_fps)
        self._max_delay = _max_delay_tolerance_ms / 1000
        size = max(1, int(self._video_fps * video_queue_size_ms / 1000))
        self._video_queue: asyncio.Queue[tuple[VideoFrame, float, float | None]] = asyncio.Queue(maxsize=size)
        self._video_frames = 0
        self._audio_samples = 0
        # wall clock (monotonic) minus media time, measured at each audio push
        self._offset: float | None = None
        self._last_video_time = 0.0
        self._last_audio_time = 0.0
        self._captured = 0
        self._first_capture: float | None = None
        self._stopped = False
        self._task = asyncio.get_running_loop().create_task(self._capture_video())

    async def push(self, frame: VideoFrame | AudioFrame, timestamp: float | None = None) -> None:
        """Queue ``frame``; ``timestamp`` (seconds, optional) is reported back by
        :attr:`last_video_time` / :attr:`last_audio_time` (for audio, the frame's end time)."""
        if isinstance(frame, AudioFrame):
            start = self._audio_samples / self._audio_source.sample_rate
            await self._audio_source.capture_frame(frame)
            # the frame now ends the source's queue: it starts playing once what is ahead of it has,
            # counted from when the queue's next 10 ms chunk is due (not from now: up to a chunk
            # earlier, which would show each picture before its sound)
            queued = self._audio_source.queued_duration
            self._offset = self._audio_source._first_queued_due() + max(0.0, queued - frame.duration) - start
            self._audio_samples += frame.samples_per_channel
            if timestamp is not None:
                self._last_audio_time = timestamp
            return
        if not isinstance(frame, VideoFrame):
            raise ValueError(f"expected a VideoFrame or an AudioFrame, got {type(frame).__name__}")
        media_time = self._video_frames / self._video_fps
        self._video_frames += 1
        await self._video_queue.put((frame, media_time, timestamp))

    async def clear_queue(self) -> None:
        """Drop queued audio and video."""
        self._audio_source.clear_queue()
        while not self._video_queue.empty():
            self._video_queue.get_nowait()
            self._video_queue.task_done()

    async def wait_for_playout(self) -> None:
        """Wait until every pushed video frame and all pushed audio were played out."""
        await asyncio.gather(self._audio_source.wait_for_playout(), self._video_queue.join())

    def reset(self) -> None:
        """Start media time again from zero (a new clip)."""
        self._video_frames = 0
        self._audio_samples = 0
        self._offset = None

    async def _capture_video(self) -> None:
        period = 1.0 / self._video_fps
        next_at = time.monotonic()
        while not self._stopped:
            frame, media_time, timestamp = await self._video_queue.get()
            try:
                now = time.monotonic()
                due = media_time + self._offset if self._offset is not None else next_at
                if due - now > self._max_delay + 1.0:
                    due = now  # a media clock far off (a reset, a seek): do not stall the picture
                if due > now:
                    await asyncio.sleep(due - now)
                self._video_source.capture_frame(frame)
                self._captured += 1
                if self._first_capture is None:
                    self._first_capture = time.monotonic()
                next_at = max(time.monotonic(), due) + period
                if timestamp is not None:
                    self._last_video_time = timestamp
            finally:
                self._video_queue.task_done()

    async def aclose(self) -> None:
        """Stop capturing video (queued frames are dropped)."""
        self._stopped = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def actual_fps(self) -> float:
        """Video frames captured per second since the first one."""
        if self._first_capture is None or self._captured < 2:
            return 0.0
        elapsed = time.monotonic() - self._first_capture
        return (self._captured - 1) / elapsed if elapsed > 0 else 0.0

    @property
    def last_video_time(self) -> float:
        """The ``timestamp`` of the last video frame captured."""
        return self._last_video_time

    @property
    def last_audio_time(self) -> float:
        """The ``timestamp`` of the last audio pushed, minus what is still queued (what was heard last)."""
        return self._last_audio_time - self._audio_source.queued_duration
