"""Receive pipeline of one subscribed video track: RTP -> frames -> decoder -> VideoFrame.

Packets arrive on the event loop (transport callback). Frame assembly is cheap and
stays there; decoding and the I420 copy into a VideoFrame run in a worker thread,
one frame at a time, so the event loop never waits on the codec.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from kitewire.frames import VideoFrame
from kitewire.media import AssembledFrame, FrameAssembler, FrameMetadata, VideoDecoder, normalize_codec
from kitewire.media.e2ee_frame import FrameTransform
from kitewire.media.packet_trailer import detach_metadata
from kitewire.transport import RtpHeader, RtpReceiver
from kitewire.transport.codecs import Codec
from kitewire.transport.rtp import (
    URI_ABS_CAPTURE_TIME,
    URI_VIDEO_ORIENTATION,
    decode_abs_capture_time,
    decode_video_orientation,
)

from ._receive_hooks import listen, stop_listening
from ._timebase import RTP_VIDEO_CLOCK_RATE, degrees_to_rotation, ntp_us_to_capture_us
from .lipsync import SenderClock, StreamSync

logger = logging.getLogger("kitewire.engine")

FrameCallback = Callable[[VideoFrame, int, int, FrameMetadata | None], None]
# memory for a decoded picture of N bytes (a flat uint8 array), or None for new memory
FrameMemory = Callable[[int], "npt.NDArray[np.uint8] | None"]

# how often lost packets are NACKed and stalled frames given up on
_FEEDBACK_INTERVAL = 0.02
# encoded frames waiting for the decoder; beyond this the decoder cannot keep up and
# the backlog is dropped in favour of the next keyframe (fresh frames over old ones)
_MAX_DECODE_BACKLOG = 60
# capture times remembered per RTP timestamp (a few frames of reordering)
_CAPTURE_TIMES_KEPT = 64


def _show_frame(
    callback: FrameCallback, timestamp_us: int, rotation: int, metadata: FrameMetadata | None, frame: VideoFrame
) -> None:
    callback(frame, timestamp_us, rotation, metadata)


class VideoReceivePipeline:
    """Turns one m-line's RTP into decoded frames delivered to ``on_frame``.

    ``on_frame(frame, timestamp_us, rotation, metadata)`` runs on the event loop with
    the sender's capture time (abs-capture-time, interpolated on the RTP clock between
    extension values), rotation (video-orientation, sticky) and the frame's metadata
    (LiveKit's packet trailer, stripped before decoding; None when it has none).
    """

    def __init__(self, receiver: RtpReceiver, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._receiver = receiver
        self._loop = loop or asyncio.get_running_loop()
        self.on_frame: FrameCallback | None = None
        #: E2EE: opens each assembled frame before decoding (None drops it)
        self.frame_transform: FrameTransform | None = None
        #: tells whether decoded pictures are wanted (None: always)
        self.has_consumers: Callable[[], bool] | None = None
        #: where decoded pictures are copied (a worker thread): the media process gives
        #: shared-memory slots, so a frame crosses to the application without another copy
        self.frame_memory: FrameMemory | None = None
        #: ``on_frame`` is thread-safe and needs no loop (the media process's forwarding):
        #: a frame to be shown at once then goes to it from the decoding thread, saving
        #: the hop back onto the loop first
        self.delivers_from_worker = False
        self._assembler: FrameAssembler | None = None
        self._decoder: VideoDecoder | None = None
        self._codec: str | None = None
        self._ssrc: int | None = None
        self._payload_codecs: dict[int, str] = {}
        self._abs_capture_id: int | None = None
        self._orientation_id: int | None = None
        self._capture_times: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._capture_anchor: tuple[int, int] | None = None  # (rtp timestamp, capture us)
        self._rotation = 0
        self._last_shown_timestamp: int | None = None
        self._decode_queue: collections.deque[AssembledFrame] = collections.deque()
        self._decode_wakeup = asyncio.Event()
        self._closed = False
        self.frames_decoded = 0
        self.keyframes_decoded = 0
        #: size of the last decoded picture (0 before the first)
        self.frame_width = 0
        self.frame_height = 0
        self.frames_assembled = 0
        self.packets_received = 0
        #: sequence numbers NACKed and keyframe requests (PLI) sent
        self.nacks_sent = 0
        self.keyframe_requests_sent = 0
        #: the remote media stream this track is lip-synced with (set by the engine; None: not held)
        self.lip_sync: StreamSync | None = None
        self._sender_clock = SenderClock(RTP_VIDEO_CLOCK_RATE)
        self._refresh_negotiation()
        listen(receiver, self._on_rtp, self._sender_clock)
        self._decode_task = self._loop.create_task(self._decode_loop())
        self._feedback_task = self._loop.create_task(self._feedback_loop())

    def _refresh_negotiation(self) -> None:
        self._payload_codecs = {}
        for codec in self._receiver.codecs:
            if codec.payload_type is None:
                continue
            try:
                self._payload_codecs[codec.payload_type] = normalize_codec(codec.mime_type)
            except ValueError:
                continue
        extensions = self._receiver.header_extensions
        self._abs_capture_id = extensions.get(URI_ABS_CAPTURE_TIME)
        self._orientation_id = extensions.get(URI_VIDEO_ORIENTATION)

    @property
    def negotiated_codecs(self) -> list[Codec]:
        """The codecs negotiated on this m-line (payload types set)."""
        return list(self._receiver.codecs)

    def request_keyframe(self) -> None:
        """Ask the sender for a keyframe now (e.g. when a new consumer appears)."""
        if self._ssrc is not None and not self._closed:
            self._receiver.request_keyframe(self._ssrc)

    # -- packets (event loop) --------------------------------------------------

    def _on_rtp(self, packet: bytes, header: RtpHeader) -> None:
        if self._closed:
            return
        try:
            self._handle_packet(packet, header)
        except Exception:
            # a malformed packet from the network must not kill the pipeline
            logger.exception("dropping RTP packet %r", header)

    def _handle_packet(self, packet: bytes, header: RtpHeader) -> None:
        self.packets_received += 1
        codec = self._payload_codecs.get(header.payload_type)
        if codec is None:
            self._refresh_negotiation()
            codec = self._payload_codecs.get(header.payload_type)
            if codec is None:
                return
        if codec != self._codec or header.ssrc != self._ssrc:
            self._restart(codec, header.ssrc)
        self._note_extensions(header)
        payload = bytes(packet[header.payload_offset : header.payload_end])
        if not payload:
            return
        assembler = self._assembler
        assert assembler is not None
        for frame in assembler.push(header.sequence_number, header.timestamp, header.marker, payload, time.monotonic()):
            self._enqueue(frame)

    def _restart(self, codec: str, ssrc: int) -> None:
        # a new SSRC or codec is a new bitstream: start over from its next keyframe
        self._codec = codec
        self._ssrc = ssrc
        self._assembler = FrameAssembler(codec)
        self._decode_queue.clear()
        if self._decoder is None or self._decoder.codec != codec:
            self._decoder = VideoDecoder(codec)
        self._capture_anchor = None
        self._capture_times.clear()
        self._last_shown_timestamp = None

    def _note_extensions(self, header: RtpHeader) -> None:
        if self._abs_capture_id is not None:
            value = header.extensions.get(self._abs_capture_id)
            if value is not None:
                try:
                    ntp_us, _ = decode_abs_capture_time(value)
                except ValueError:
                    pass
                else:
                    capture_us = ntp_us_to_capture_us(ntp_us)
                    self._capture_times[header.timestamp] = capture_us
                    self._capture_anchor = (header.timestamp, capture_us)
                    while len(self._capture_times) > _CAPTURE_TIMES_KEPT:
                        self._capture_times.popitem(last=False)
        if self._orientation_id is not None:
            value = header.extensions.get(self._orientation_id)
            if value:
                self._rotation = degrees_to_rotation(decode_video_orientation(value))

    def _capture_time_for(self, rtp_timestamp: int) -> int:
        exact = self._capture_times.get(rtp_timestamp)
        if exact is not None:
            return exact
        if self._capture_anchor is None:
            # the sender gave no capture time: report when the frame was received
            return time.time_ns() // 1000
        anchor_ts, anchor_us = self._capture_anchor
        delta = (rtp_timestamp - anchor_ts) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 0x100000000
        return max(0, anchor_us + delta * 1_000_000 // RTP_VIDEO_CLOCK_RATE)

    def _enqueue(self, frame: AssembledFrame) -> None:
        self.frames_assembled += 1
        if len(self._decode_queue) >= _MAX_DECODE_BACKLOG:
            logger.warning("decoder backlog of %d frames dropped; waiting for a keyframe", len(self._decode_queue))
            self._decode_queue.clear()
            if self._assembler is not None:
                self._assembler.request_keyframe()
        self._decode_queue.append(frame)
        self._decode_wakeup.set()

    # -- decoding (worker thread, one frame at a time) --------------------------

    async def _decode_loop(self) -> None:
        while not self._closed:
            if not self._decode_queue:
                self._decode_wakeup.clear()
                await self._decode_wakeup.wait()
                continue
            assembled = self._decode_queue.popleft()
            decoder = self._decoder
            if decoder is None:
                continue
            timestamp_us = self._capture_time_for(assembled.timestamp)
            rotation = self._rotation
            wanted = self.on_frame is not None and (self.has_consumers is None or self.has_consumers())
            # the packet trailer sits outside the encryption (as the official SDK puts it)
            data, metadata = detach_metadata(decoder.codec, assembled.data)
            if self.frame_transform is not None:  # E2EE: a frame that does not open is dropped
                opened = await self._loop.run_in_executor(None, self.frame_transform, decoder.codec, data)
                if opened is None or self._closed:
                    if self._assembler is not None:  # what follows must start from a keyframe
                        self._assembler.request_keyframe()
                    continue
                data = opened
            callback = self.on_frame
            in_worker: Callable[[VideoFrame], None] | None = None
            if (
                wanted
                and callback is not None
                and self.delivers_from_worker
                and self._shows(assembled.timestamp)
                and self._lip_sync_hold(assembled.timestamp) <= 0
            ):
                in_worker = functools.partial(_show_frame, callback, timestamp_us, rotation, metadata)

            try:
                decoded, frames = await self._loop.run_in_executor(
                    None, self._decode, decoder, data, assembled.keyframe, wanted, in_worker
                )
            except Exception:
                logger.exception("decoding a %s frame failed", decoder.codec)
                decoded, frames = 0, []
            if self._closed:
                return
            if not decoded and decoder.needs_keyframe and self._assembler is not None:
                self._assembler.request_keyframe()
            if not self._is_new_picture(assembled.timestamp):
                # a simulcast layer switch repeats the picture just shown (same capture,
                # same RTP time) as the new layer's keyframe: decoded, not shown twice
                continue
            if in_worker is not None:
                continue  # shown already, from the decoding thread
            hold = self._lip_sync_hold(assembled.timestamp)
            if hold > 0:
                await asyncio.sleep(hold)
                if self._closed:
                    return
            callback = self.on_frame
            for frame in frames:
                if callback is not None:
                    callback(frame, timestamp_us, rotation, metadata)

    def _decode(
        self,
        decoder: VideoDecoder,
        data: bytes,
        keyframe: bool,
        convert: bool,
        deliver: Callable[[VideoFrame], None] | None,
    ) -> tuple[int, list[VideoFrame]]:
        """Decode one frame (a worker thread; one at a time, so the counters have one writer)."""
        decoded = decoder.decode(data, keyframe=keyframe)
        self.frames_decoded += len(decoded)
        if decoded and keyframe:
            self.keyframes_decoded += 1
        # the decoder must see every frame to keep its state, but copying pictures out
        # is only worth it when someone consumes them
        if not convert:
            return len(decoded), []
        frames = [VideoFrame.from_av(av_frame, allocate=self.frame_memory) for av_frame in decoded]
        if frames:
            self.frame_width, self.frame_height = frames[-1].width, frames[-1].height
        if deliver is not None:
            for frame in frames:
                deliver(frame)
        return len(decoded), frames

    def _lip_sync_hold(self, rtp_timestamp: int) -> float:
        sync, ssrc = self.lip_sync, self._ssrc
        if sync is None or ssrc is None:
            return 0.0
        captured = self._sender_clock.capture_time(ssrc, rtp_timestamp)
        return sync.video_hold(captured) if captured is not None else 0.0

    def _shows(self, rtp_timestamp: int) -> bool:
        """Whether a picture of ``rtp_timestamp`` is newer than the last one shown."""
        last = self._last_shown_timestamp
        if last is None:
            return True
        delta = (rtp_timestamp - last) & 0xFFFFFFFF
        return delta != 0 and delta < 0x80000000

    def _is_new_picture(self, rtp_timestamp: int) -> bool:
        if not self._shows(rtp_timestamp):
            return False
        self._last_shown_timestamp = rtp_timestamp
        return True

    # -- feedback: NACK, PLI, giving up on lost packets --------------------------

    async def _feedback_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(_FEEDBACK_INTERVAL)
            assembler, ssrc = self._assembler, self._ssrc
            if assembler is None or ssrc is None:
                continue
            try:
                now = time.monotonic()
                for frame in assembler.poll(now):
                    self._enqueue(frame)
                lost = assembler.nack_list(now)
                if lost:
                    self._receiver.send_nack(ssrc, lost)
                    self.nacks_sent += len(lost)
                if assembler.keyframe_request(now):
                    self._receiver.request_keyframe(ssrc)
                    self.keyframe_requests_sent += 1
            except Exception:
                logger.exception("RTP feedback for ssrc %s failed", ssrc)

    async def close(self) -> None:
        """Stop receiving and decoding. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await stop_listening(
            self._receiver,
            self._on_rtp,
            self._sender_clock,
            self._decode_wakeup,
            (self._feedback_task, self._decode_task),
        )
        # a decode may still run in the worker thread; dropping the reference (instead
        # of closing the codec under it) lets it finish and be freed afterwards
        self._decoder = None
