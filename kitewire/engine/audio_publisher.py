"""Publish pipeline of one local audio track: PCM -> 48 kHz 20 ms frames -> Opus (worker thread) -> RTP.

PCM arrives already paced in real time (the rtc AudioSource plays its queue out
in 10 ms chunks), as plain bytes and ints so that it can cross a process pipe.
It is resampled to 48 kHz and the track's channel count when needed, cut into
20 ms frames and encoded one frame at a time in a worker thread. Every packet
carries the RFC 6464 audio level of its frame (the SFU's active-speaker input)
and the capture time (abs-capture-time). The RTP clock follows the capture
timestamps: continuous while audio is continuous (whatever the event loop's
delays), jumping by the time that passed after a pause (silence, mute), where
the first packet has the marker bit, as RFC 3551 asks for talkspurts.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time

from kitewire.frames.audio_frame import AudioFrame
from kitewire.frames.audio_resampler import AudioResampler
from kitewire.media.e2ee_frame import FrameTransform
from kitewire.media.opus import OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE, OpusEncoder
from kitewire.media.packet_trailer import FrameMetadata
from kitewire.transport import RtpSender
from kitewire.transport.rtp import (
    URI_ABS_CAPTURE_TIME,
    URI_AUDIO_LEVEL,
    audio_level_dbov,
    encode_abs_capture_time,
    encode_audio_level,
    initial_sequence_number,
)

from ._timebase import capture_us_to_ntp_us

logger = logging.getLogger("kitewire.engine")

# 20 ms frames waiting for the encoder; more means the encoder cannot keep up
# (an overloaded machine): the oldest go, so what is sent stays current
_MAX_ENCODE_BACKLOG = 25
# libopus's algorithmic delay at 48 kHz for the "audio" application our encoder uses (OPUS_GET_LOOKAHEAD:
# 312 samples); measured the same through PyAV's encoder and libopus's decoder
_OPUS_LOOKAHEAD_US = 312 * 1_000_000 // OPUS_SAMPLE_RATE
# capture timestamps this far (in 48 kHz ticks) ahead of the running RTP clock are a pause
_PAUSE_TICKS = OPUS_SAMPLE_RATE // 100
# below this level (-dBov) a frame does not count as voice activity
_VOICE_LEVEL = 60


# frames encoded in one worker-thread call when a backlog built up (a slow executor catches up fast)
_ENCODE_BATCH = 10


def _encode(encoder: OpusEncoder, frames: list[bytes], transform: FrameTransform | None) -> list[list[bytes]]:
    encoded = [encoder.encode(pcm) for pcm in frames]
    if transform is None:
        return encoded
    # an Opus frame is one packet: E2EE seals each one (None drops it)
    return [[sealed for packet in packets if (sealed := transform("opus", packet)) is not None] for packets in encoded]


class AudioPublishPipeline:
    """Encodes the PCM of one local audio track and sends it on ``sender`` (Opus, one packet per 20 ms)."""

    def __init__(
        self,
        sender: RtpSender,
        *,
        num_channels: int = 1,
        bitrate: int = 32_000,
        dtx: bool = True,
        fec: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._sender = sender
        self._loop = loop or asyncio.get_running_loop()
        self._channels = num_channels
        self._encoder = OpusEncoder(num_channels, bitrate=bitrate, dtx=dtx, fec=fec)
        self._resampler: AudioResampler | None = None
        self._resampler_format: tuple[int, int] | None = None
        self._pending = bytearray()
        self._pending_timestamp_us = 0
        self._backlog: collections.deque[tuple[bytes, int, float]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._muted = False
        self._sequence_number = initial_sequence_number()
        self._rtp_base = random.randint(0, 0xFFFFFFFF)
        self._origin_us: int | None = None
        self._next_timestamp: int | None = None
        self._marker_next = True
        # (RTP timestamp, Unix capture time) of the last frame sent: our sender reports' clock
        self._media_clock: tuple[int, float] | None = None
        sender.media_clock = lambda _ssrc: self._media_clock
        self.frames_encoded = 0
        #: E2EE: seals each Opus packet (None drops it)
        self.frame_transform: FrameTransform | None = None
        self.frames_dropped = 0
        self.packets_sent = 0
        self.bytes_sent = 0
        self._task = self._loop.create_task(self._encode_loop())

    @property
    def muted(self) -> bool:
        """While muted, captured audio is dropped and nothing is sent."""
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self._muted = bool(value)
        if self._muted:
            self._pending.clear()
            self._backlog.clear()

    async def warm_up(self) -> None:
        """Nothing to warm: Opus starts in microseconds (kept for the video pipeline's shape)."""

    # -- PCM in (event loop) -----------------------------------------------------

    def on_audio(
        self, pcm: bytes, sample_rate: int, num_channels: int, samples_per_channel: int, timestamp_us: int
    ) -> None:
        """Offer ``samples_per_channel`` of int16 interleaved PCM captured at ``timestamp_us`` (Unix µs)."""
        if self._closed or self._muted or samples_per_channel <= 0:
            return
        if (sample_rate, num_channels) != (OPUS_SAMPLE_RATE, self._channels):
            pcm = self._convert(pcm, sample_rate, num_channels, samples_per_channel)
        # the capture time of the first pending sample (pending samples came just before these)
        pending_samples = len(self._pending) // (2 * self._channels)
        self._pending_timestamp_us = timestamp_us - pending_samples * 1_000_000 // OPUS_SAMPLE_RATE
        self._pending += pcm
        frame_bytes = OPUS_FRAME_SAMPLES * self._channels * 2
        while len(self._pending) >= frame_bytes:
            chunk = bytes(self._pending[:frame_bytes])
            del self._pending[:frame_bytes]
            if len(self._backlog) >= _MAX_ENCODE_BACKLOG:
                self._backlog.popleft()
                self.frames_dropped += 1
            self._backlog.append((chunk, self._pending_timestamp_us, time.monotonic()))
            self._pending_timestamp_us += OPUS_FRAME_SAMPLES * 1_000_000 // OPUS_SAMPLE_RATE
        self._wakeup.set()

    def on_frame(
        self, frame: AudioFrame, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None
    ) -> None:
        """Frame sink (the local track's fanout): :meth:`on_audio` with the frame's samples."""
        self.on_audio(
            bytes(frame.data.cast("B")), frame.sample_rate, frame.num_channels, frame.samples_per_channel, timestamp_us
        )

    def _convert(self, pcm: bytes, sample_rate: int, num_channels: int, samples: int) -> bytes:
        if self._resampler is None or self._resampler_format != (sample_rate, num_channels):
            self._resampler = AudioResampler(
                sample_rate, OPUS_SAMPLE_RATE, num_channels=num_channels, output_channels=self._channels
            )
            self._resampler_format = (sample_rate, num_channels)
        frame = AudioFrame(bytearray(pcm), sample_rate, num_channels, samples)
        return b"".join(bytes(out.data.cast("B")) for out in self._resampler.push(frame))

    def on_end(self) -> None:
        """The source closed; nothing more will be sent."""
        self._closed = True
        self._wakeup.set()

    # -- encoding and sending ------------------------------------------------------

    async def _encode_loop(self) -> None:
        while not self._closed:
            if not self._backlog:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._backlog.popleft() for _ in range(min(_ENCODE_BATCH, len(self._backlog)))]
            try:
                encoded = await self._loop.run_in_executor(
                    None, _encode, self._encoder, [pcm for pcm, _, _ in batch], self.frame_transform
                )
            except Exception:
                logger.exception("encoding %d ms of audio failed", 20 * len(batch))
                continue
            if self._closed or self._muted:
                continue
            for (pcm, timestamp_us, queued_at), packets in zip(batch, encoded, strict=True):
                self.frames_encoded += 1
                self._send(packets, pcm, timestamp_us, queued_at)

    def _rtp_timestamp(self, timestamp_us: int) -> int:
        if self._origin_us is None:
            self._origin_us = timestamp_us
        ticks = (timestamp_us - self._origin_us) * OPUS_SAMPLE_RATE // 1_000_000
        captured = (self._rtp_base + ticks) & 0xFFFFFFFF
        running = self._next_timestamp
        if running is None:
            self._marker_next = True
            return captured
        ahead = (captured - running) & 0xFFFFFFFF
        if _PAUSE_TICKS < ahead < 0x80000000:
            # a pause (silence suppressed, muted, nothing captured): the clock jumps over it
            self._marker_next = True
            return captured
        # continuous audio (or a capture clock that stepped back): count samples
        return running

    def _send(self, packets: list[bytes], pcm: bytes, timestamp_us: int, queued_at: float) -> None:
        payload_type = self._payload_type()
        timestamp = self._rtp_timestamp(timestamp_us)
        self._next_timestamp = (timestamp + OPUS_FRAME_SAMPLES) & 0xFFFFFFFF
        # A decoded Opus frame lags its input by the encoder's lookahead: the sound captured at
        # timestamp_us comes out that much into the frame. The stamps (sender reports and
        # abs-capture-time) name when what the receiver decodes at this RTP time was captured,
        # so a receiver lines it up with the pictures captured with it.
        timestamp_us -= _OPUS_LOOKAHEAD_US
        self._media_clock = (timestamp, timestamp_us / 1_000_000)
        if payload_type is None or not packets:
            return  # DTX suppressed the frame: the clock runs on, nothing is sent
        level = audio_level_dbov(pcm)
        extensions = {
            URI_AUDIO_LEVEL: encode_audio_level(level, level < _VOICE_LEVEL),
            URI_ABS_CAPTURE_TIME: encode_abs_capture_time(capture_us_to_ntp_us(timestamp_us)),
        }
        for payload in packets:
            packet = self._sender.build_packet(
                payload,
                payload_type=payload_type,
                sequence_number=self._sequence_number,
                timestamp=timestamp,
                marker=self._marker_next,
                extensions=extensions,
            )
            self._marker_next = False
            self._sequence_number = (self._sequence_number + 1) & 0xFFFF
            self._sender.send_rtp(packet)
            self.packets_sent += 1
            self.bytes_sent += len(payload)

    def _payload_type(self) -> int | None:
        for codec in self._sender.codecs:
            if codec.payload_type is not None and codec.name.lower() == "opus":
                return codec.payload_type
        return None

    async def close(self) -> None:
        """Stop encoding and sending. Idempotent."""
        self._closed = True
        self._wakeup.set()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
