"""Receive pipeline of one subscribed audio track: RTP -> jitter buffer -> Opus decoder (worker thread) -> PCM.

Packets go through :class:`kitewire.media.audio_jitter.AudioJitterBuffer` on the event
loop (cheap); what it releases is decoded in a worker thread, a batch at a time. A
hole the jitter buffer gives up on is concealed by libopus itself (the lost frame's
FEC copy from the packet after it, else its PLC; see ``_Decode``), or where libopus
cannot be called, by the last decoded 20 ms repeated at falling gain, then silence
once a loss outlasts :data:`_CONCEAL_FRAMES` frames. A
pause in RTP time without loss (DTX, a muted sender) is played as silence up to
the jitter buffer's gap limit. Decoded PCM goes to ``on_audio(pcm, 48000, 2,
samples_per_channel, timestamp_us)`` on the event loop as plain bytes and ints.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable

import numpy as np

from kitewire.media.audio_jitter import AudioJitterBuffer, Gap, Packet
from kitewire.media.e2ee_frame import FrameTransform
from kitewire.media.opus import (
    OPUS_CHANNELS,
    OPUS_FRAME_SAMPLES,
    OPUS_SAMPLE_RATE,
    OpusConcealingDecoder,
    OpusDecoder,
    opus_frame_samples,
)
from kitewire.transport import RtpHeader, RtpReceiver
from kitewire.transport.rtp import URI_ABS_CAPTURE_TIME, decode_abs_capture_time

from ._receive_hooks import listen, stop_listening
from ._timebase import ntp_us_to_capture_us
from .lipsync import SenderClock, StreamSync

logger = logging.getLogger("kitewire.engine")

#: on_audio(pcm, sample_rate, num_channels, samples_per_channel, timestamp_us)
AudioCallback = Callable[[bytes, int, int, int, int], None]

# how often held packets are checked for holes that timed out
_POLL_INTERVAL = 0.01
# a poll later than this beyond its interval counts as an event-loop stall
_STALL_ALLOWANCE = 0.01
# lost 20 ms frames concealed from the last good one before it fades to silence
_CONCEAL_FRAMES = 5
_CONCEAL_GAIN = 0.6
# batches (of packets and gaps) waiting for the decoder before the oldest are dropped
_MAX_DECODE_BACKLOG = 50


def _opened(batch: list[Packet | Gap], transform: FrameTransform) -> list[Packet | Gap]:
    # before FEC reads a packet it must be opened too, so the whole batch is, first
    out: list[Packet | Gap] = []
    for item in batch:
        if isinstance(item, Packet):
            payload = transform("opus", item.payload)
            if payload is None:
                continue
            item = Packet(item.timestamp, payload)
        out.append(item)
    return out


class _Decode:
    """Decoder state used from the worker thread only (one batch at a time).

    With libopus reachable (:class:`OpusConcealingDecoder`) a lost frame is made up by
    the decoder: from the next packet's in-band FEC when that packet is at hand, else by
    its PLC. Without it, the last good frame is repeated at falling gain.
    """

    def __init__(self) -> None:
        self.native = OpusConcealingDecoder(OPUS_CHANNELS) if OpusConcealingDecoder.available() else None
        self.decoder: OpusDecoder | OpusConcealingDecoder = self.native or OpusDecoder(OPUS_CHANNELS)
        self.last_frame: np.ndarray | None = None
        self.concealed_run = 0
        self.frames_concealed = 0
        self.frames_recovered = 0
        #: E2EE: opens each packet before decoding (None: it does not open and is skipped)
        self.transform: FrameTransform | None = None

    def run(self, batch: list[Packet | Gap]) -> list[tuple[bytes, int, int]]:
        """PCM pieces (bytes, samples per channel, rtp timestamp or -1 for filler) for a batch."""
        out: list[tuple[bytes, int, int]] = []
        if self.transform is not None:
            batch = _opened(batch, self.transform)
        for index, item in enumerate(batch):
            if isinstance(item, Gap):
                following = batch[index + 1] if index + 1 < len(batch) else None
                if self.native is not None and item.lost:
                    out += self._conceal_natively(self.native, item, following)
                else:
                    out += self._fill(item)
                continue
            pcm = self.decoder.decode(item.payload)
            if not pcm:
                continue
            samples = len(pcm) // (2 * OPUS_CHANNELS)
            self.last_frame = np.frombuffer(pcm, dtype=np.int16)
            self.concealed_run = 0
            out.append((pcm, samples, item.timestamp))
        return out

    def _conceal_natively(
        self, decoder: OpusConcealingDecoder, gap: Gap, following: Packet | Gap | None
    ) -> list[tuple[bytes, int, int]]:
        out: list[tuple[bytes, int, int]] = []
        remaining = gap.samples
        while remaining > 0:
            samples = min(OPUS_FRAME_SAMPLES, remaining)
            remaining -= samples
            if remaining == 0 and isinstance(following, Packet):
                # the frame right before a packet that came: its FEC copy is in that packet
                pcm = decoder.recover(following.payload, samples)
                self.frames_recovered += 1
            else:
                pcm = decoder.conceal(samples)
            self.frames_concealed += 1
            out.append((pcm, samples, -1))
        return out

    def _fill(self, gap: Gap) -> list[tuple[bytes, int, int]]:
        out: list[tuple[bytes, int, int]] = []
        remaining = gap.samples
        while remaining > 0:
            samples = min(OPUS_FRAME_SAMPLES, remaining)
            remaining -= samples
            frame = np.zeros(samples * OPUS_CHANNELS, dtype=np.int16)
            last = self.last_frame
            if gap.lost and last is not None and self.concealed_run < _CONCEAL_FRAMES:
                self.concealed_run += 1
                self.frames_concealed += 1
                gain = _CONCEAL_GAIN**self.concealed_run
                repeated = np.resize(last, samples * OPUS_CHANNELS).astype(np.float32) * gain
                frame = repeated.astype(np.int16)
            out.append((frame.tobytes(), samples, -1))
        return out


class AudioReceivePipeline:
    """Turns one audio m-line's RTP into 48 kHz stereo PCM delivered to ``on_audio``."""

    def __init__(self, receiver: RtpReceiver, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._receiver = receiver
        self._loop = loop or asyncio.get_running_loop()
        self.on_audio: AudioCallback | None = None
        #: tells whether decoded audio is wanted (None: always); decoding goes on regardless
        self.has_consumers: Callable[[], bool] | None = None
        self._ssrc: int | None = None
        self._jitter = AudioJitterBuffer(opus_frame_samples)
        self._decode = _Decode()
        self._backlog: collections.deque[list[Packet | Gap]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._abs_capture_id = receiver.header_extensions.get(URI_ABS_CAPTURE_TIME)
        self._capture_anchor: tuple[int, int] | None = None  # (rtp timestamp, capture us)
        self._closed = False
        self.packets_received = 0
        self.samples_delivered = 0
        #: the remote media stream this track is lip-synced with (set by the engine; None: not reported)
        self.lip_sync: StreamSync | None = None
        self._sender_clock = SenderClock(OPUS_SAMPLE_RATE)
        listen(receiver, self._on_rtp, self._sender_clock)
        self._decode_task = self._loop.create_task(self._decode_loop())
        self._poll_task = self._loop.create_task(self._poll_loop())

    @property
    def frame_transform(self) -> FrameTransform | None:
        """E2EE: opens each packet before decoding (None: it does not open and is skipped)."""
        return self._decode.transform

    @frame_transform.setter
    def frame_transform(self, transform: FrameTransform | None) -> None:
        self._decode.transform = transform

    @property
    def jitter_buffer(self) -> AudioJitterBuffer:
        """The current SSRC's jitter buffer (its counters: lost, late, jitter, target delay)."""
        return self._jitter

    @property
    def packets_lost(self) -> int:
        """Packets the current SSRC's jitter buffer gave up waiting for."""
        return self._jitter.packets_lost

    @property
    def frames_concealed(self) -> int:
        """20 ms frames made up for lost packets."""
        return self._decode.frames_concealed

    @property
    def frames_recovered(self) -> int:
        """Of those, frames rebuilt from the next packet's in-band FEC."""
        return self._decode.frames_recovered

    # -- packets (event loop) ------------------------------------------------------

    def _on_rtp(self, packet: bytes, header: RtpHeader) -> None:
        if self._closed:
            return
        try:
            self._handle_packet(packet, header)
        except Exception:
            logger.exception("dropping audio RTP packet %r", header)

    def _handle_packet(self, packet: bytes, header: RtpHeader) -> None:
        if not self._is_opus(header.payload_type):
            return
        self.packets_received += 1
        if header.ssrc != self._ssrc:
            self._ssrc = header.ssrc
            self._jitter = AudioJitterBuffer(opus_frame_samples)
            self._capture_anchor = None
        if self._abs_capture_id is None:
            self._abs_capture_id = self._receiver.header_extensions.get(URI_ABS_CAPTURE_TIME)
        if self._abs_capture_id is not None:
            value = header.extensions.get(self._abs_capture_id)
            if value is not None:
                try:
                    ntp_us, _ = decode_abs_capture_time(value)
                except ValueError:
                    pass
                else:
                    self._capture_anchor = (header.timestamp, ntp_us_to_capture_us(ntp_us))
        payload = bytes(packet[header.payload_offset : header.payload_end])
        self._enqueue(self._jitter.push(header.sequence_number, header.timestamp, payload, time.monotonic()))

    def _is_opus(self, payload_type: int) -> bool:
        for codec in self._receiver.codecs:
            if codec.payload_type == payload_type:
                return codec.name.lower() == "opus"
        return False

    def _enqueue(self, batch: list[Packet | Gap]) -> None:
        if not batch:
            return
        if len(self._backlog) >= _MAX_DECODE_BACKLOG:
            self._backlog.popleft()
        self._backlog.append(batch)
        self._wakeup.set()

    async def _poll_loop(self) -> None:
        while not self._closed:
            asked = time.monotonic()
            await asyncio.sleep(_POLL_INTERVAL)
            now = time.monotonic()
            # a poll that overslept means the event loop stalled: packets that arrived
            # meanwhile may still wait behind this callback, so nothing is concealed
            # ahead of them until the next poll
            stalled = now - asked > _POLL_INTERVAL + _STALL_ALLOWANCE
            try:
                self._enqueue(self._jitter.pop_ready(now, conceal_ahead=not stalled))
            except Exception:
                logger.exception("audio jitter buffer poll failed")

    # -- decoding (worker thread) ----------------------------------------------------

    def _capture_time_for(self, rtp_timestamp: int) -> int:
        if self._capture_anchor is None or rtp_timestamp < 0:
            return time.time_ns() // 1000
        anchor_ts, anchor_us = self._capture_anchor
        delta = (rtp_timestamp - anchor_ts) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 0x100000000
        return max(0, anchor_us + delta * 1_000_000 // OPUS_SAMPLE_RATE)

    async def _decode_loop(self) -> None:
        while not self._closed:
            if not self._backlog:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch: list[Packet | Gap] = []
            while self._backlog:
                batch += self._backlog.popleft()
            try:
                pieces = await self._loop.run_in_executor(None, self._decode.run, batch)
            except Exception:
                logger.exception("decoding audio failed")
                continue
            if self._closed:
                return
            callback = self.on_audio
            for pcm, samples, rtp_timestamp in pieces:
                self.samples_delivered += samples
                if callback is not None:
                    callback(pcm, OPUS_SAMPLE_RATE, OPUS_CHANNELS, samples, self._capture_time_for(rtp_timestamp))
            self._report_played(pieces)

    def _report_played(self, pieces: list[tuple[bytes, int, int]]) -> None:
        """Tell the lip sync how late (behind its capture) the newest audio handed over is.

        Only while someone listens: pictures are not held back for audio nobody plays.
        """
        sync, ssrc = self.lip_sync, self._ssrc
        if sync is None or ssrc is None or (self.has_consumers is not None and not self.has_consumers()):
            return
        for _, samples, rtp_timestamp in reversed(pieces):
            if rtp_timestamp >= 0:
                captured = self._sender_clock.capture_time(ssrc, rtp_timestamp)
                if captured is not None:
                    sync.audio_played(captured + samples / OPUS_SAMPLE_RATE)
                return

    async def close(self) -> None:
        """Stop receiving and decoding. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await stop_listening(
            self._receiver, self._on_rtp, self._sender_clock, self._wakeup, (self._poll_task, self._decode_task)
        )
