"""Publish pipeline of one local video track: frames -> encoders -> RTP.

Frames come in on the event loop (or any thread); only the newest frame waits for
the encoder, so a slow encoder drops frames instead of building latency. Scaling and
encoding run on worker threads, the simulcast layers of one frame at the same time
(libvpx, x264 and swscale run without the GIL, so the layers use the machine's cores).
Each layer (one, or q/h/f with simulcast) has its own encoder, SSRC, sequence numbers
and packet history for NACK retransmission.

Under loss each layer's bitrate and picture size follow what its receiver reports
(:mod:`kitewire.engine._loss_control`): fewer packets per frame means fewer frames
broken by a lost packet. A keyframe request makes the next frame a keyframe. On a
lossy path retransmissions and keyframes go out twice, and every packet does once
heavy loss has cut the bitrate (no FEC or RTX is negotiated).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
import time
from dataclasses import dataclass, field

import av
from av.video.reformatter import VideoReformatter

from kitewire.frames import VideoFrame
from kitewire.media import (
    EncodedFrame,
    FrameMetadata,
    PacketHistory,
    VideoEncoder,
    VideoLayerPlan,
    normalize_codec,
)
from kitewire.media.e2ee_frame import FrameTransform
from kitewire.media.packet_trailer import restrict_to_features
from kitewire.transport import RtpSender
from kitewire.transport.rtcp import ReportBlock
from kitewire.transport.rtp import (
    URI_ABS_CAPTURE_TIME,
    URI_VIDEO_ORIENTATION,
    encode_abs_capture_time,
    encode_video_orientation,
    initial_sequence_number,
)

from ._loss_control import LOW_LOSS, LossRateController, scaled_size
from ._timebase import RTP_VIDEO_CLOCK_RATE, capture_us_to_ntp_us, rotation_to_degrees
from .stats import LayerCounters

logger = logging.getLogger("kitewire.engine")

# packets sent back to back before yielding to the event loop
_PACKETS_PER_BURST = 16


@dataclass
class _Layer:
    plan: VideoLayerPlan
    rid: str | None
    ssrc: int
    encoder: VideoEncoder
    control: LossRateController
    history: PacketHistory = field(default_factory=lambda: PacketHistory(max_packets=1024, max_age=1.0))
    sequence_number: int = field(default_factory=initial_sequence_number)
    keyframe_wanted: bool = True
    scale: float = 1.0
    frames_sent: int = 0
    keyframes_sent: int = 0
    bytes_sent: int = 0
    # the layer's own scaler: av.VideoFrame.reformat shares one per source frame, and
    # the layers of a frame scale it at the same time
    reformatter: VideoReformatter = field(default_factory=VideoReformatter)


@dataclass(frozen=True)
class _PendingFrame:
    frame: VideoFrame
    timestamp_us: int
    rotation: int
    captured_at: float
    metadata: FrameMetadata | None = None


def _even(value: int) -> int:
    return max(2, value - (value % 2))


def _to_yuv420p(frame: VideoFrame) -> av.VideoFrame:
    picture = frame.to_av()
    if picture.format.name != "yuv420p":
        picture = picture.reformat(format="yuv420p")
    return picture


def _convert_then_encode(
    frame: VideoFrame,
    converted: concurrent.futures.Future[av.VideoFrame],
    owns_picture: bool,
    layer: _Layer,
    width: int,
    height: int,
    keyframe: bool,
    captured_at: float,
    metadata: FrameMetadata | None,
) -> EncodedFrame:
    """The first job of a frame: convert it for the encoders (handing the picture to the
    other layers' jobs through ``converted``), then encode the top layer.

    One job instead of a conversion job and then the encodes saves the frame a round
    trip through the event loop before encoding starts.
    """
    try:
        picture = _to_yuv420p(frame)
    except BaseException as exc:
        converted.set_exception(exc)
        raise
    converted.set_result(picture)
    return _encode_layer(picture, owns_picture, layer, width, height, keyframe, captured_at, metadata)


def _encode_layer(
    picture: av.VideoFrame | concurrent.futures.Future[av.VideoFrame],
    owns_picture: bool,
    layer: _Layer,
    width: int,
    height: int,
    keyframe: bool,
    captured_at: float,
    metadata: FrameMetadata | None,
) -> EncodedFrame:
    """Scale ``picture`` to one layer's size and encode it (a worker thread, beside the other layers').

    The layers of a frame share ``picture`` and run at the same time: each scales with
    its own reformatter, which only reads it. The encoder writes ``pts`` into the frame
    it gets, so only the one layer that ``owns_picture`` may encode it unscaled; another
    layer of the same size encodes a copy. ``picture`` may still be being converted by
    the frame's first job (a future): the other layers wait for it here.
    """
    if isinstance(picture, concurrent.futures.Future):
        picture = picture.result()
    if (picture.width, picture.height) != (width, height):
        scaled = layer.reformatter.reformat(picture, width=width, height=height, format="yuv420p")
    elif owns_picture:
        scaled = picture
    else:
        scaled = av.VideoFrame.from_ndarray(picture.to_ndarray(), format="yuv420p")
    return layer.encoder.encode(scaled, keyframe=keyframe, capture_time=captured_at, metadata=metadata)


class VideoPublishPipeline:
    """Encodes frames of one local track and sends them on ``sender``.

    Acts as a frame sink: call :meth:`on_frame` for every captured frame.
    ``frame_metadata_features`` (PacketTrailerFeature numbers) says which fields of a
    frame's metadata travel with it, in LiveKit's packet trailer. ``frame_transform``
    (E2EE) turns each encoded frame into what is packetized, or None to drop it.
    """

    def __init__(
        self,
        sender: RtpSender,
        *,
        codec: str,
        layers: list[VideoLayerPlan],
        simulcast: bool,
        frame_metadata_features: frozenset[int] = frozenset(),
        frame_transform: FrameTransform | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not layers:
            raise ValueError("expected at least one video layer to publish, got none")
        self._sender = sender
        self._codec = normalize_codec(codec)
        self._loop = loop or asyncio.get_running_loop()
        self._simulcast = simulcast
        self._frame_metadata_features = frozenset(frame_metadata_features)
        self._layers: list[_Layer] = []
        for plan in layers:
            rid = plan.rid if simulcast else None
            ssrc = sender.ssrc_for_rid(plan.rid) if simulcast else sender.ssrc
            bitrate = max(50_000, int(plan.max_bitrate))
            encoder = VideoEncoder(
                self._codec,
                _even(plan.width),
                _even(plan.height),
                bitrate=bitrate,
                framerate=float(plan.max_framerate or 30.0),
            )
            encoder.frame_transform = frame_transform
            control = LossRateController(bitrate, now=time.monotonic(), pixels=_even(plan.width) * _even(plan.height))
            self._layers.append(_Layer(plan=plan, rid=rid, ssrc=ssrc, encoder=encoder, control=control))
        self._layer_by_ssrc = {layer.ssrc: layer for layer in self._layers}
        self._pending: _PendingFrame | None = None
        self._pending_lock = threading.Lock()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._muted = False
        self._last_rtp_timestamp: int | None = None
        self._rtp_base = random.randint(0, 0xFFFFFFFF)
        self._clock_origin = time.monotonic()
        sender.media_clock = self._media_clock
        self.frames_encoded = 0
        self.frames_dropped = 0
        #: keyframe requests (PLI/FIR) received, keyframes sent, NACKed packets resent
        self.keyframe_requests = 0
        self.keyframes_sent = 0
        self.retransmissions = 0
        #: packets sent a second time on a lossy path (keyframes; every frame after a heavy cut)
        self.packets_protecting = 0
        sender.on_keyframe_request = self._on_keyframe_request
        sender.on_nack = self._on_nack
        sender.on_receiver_report = self._on_receiver_report
        self._task = self._loop.create_task(self._encode_loop())

    @property
    def muted(self) -> bool:
        """While muted, captured frames are dropped."""
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self._muted = value
        if not value:
            for layer in self._layers:
                layer.keyframe_wanted = True

    def layer_counters(self) -> dict[int, LayerCounters]:
        """Each layer's counters, by SSRC."""
        return {
            layer.ssrc: LayerCounters(
                layer.rid,
                layer.frames_sent,
                layer.keyframes_sent,
                layer.encoder.width,
                layer.encoder.height,
                layer.encoder.bitrate,
            )
            for layer in self._layers
        }

    @property
    def bytes_sent(self) -> int:
        """Payload bytes sent over all layers."""
        return sum(layer.bytes_sent for layer in self._layers)

    async def warm_up(self) -> None:
        """Encode one blank frame per layer so the first real frames are not slowed
        by codec start-up (which would make the pipeline drop them).

        The output is discarded; the next real frame is still forced to a keyframe.
        """

        def encode_blank() -> None:
            for layer in self._layers:
                width, height = _even(layer.plan.width), _even(layer.plan.height)
                blank = av.VideoFrame(width, height, "yuv420p")
                for plane in blank.planes:
                    plane.update(bytes(plane.buffer_size))
                layer.encoder.encode(blank, keyframe=True)

        try:
            await self._loop.run_in_executor(None, encode_blank)
        except Exception:
            logger.exception("encoder warm-up failed")
        for layer in self._layers:
            layer.keyframe_wanted = True

    # -- frame sink ------------------------------------------------------------

    def on_frame(
        self, frame: VideoFrame, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None
    ) -> None:
        """Offer a captured frame (with its metadata); replaces a frame still waiting for the encoder."""
        if self._closed or self._muted:
            return
        pending = _PendingFrame(frame, timestamp_us, rotation, time.monotonic(), metadata)
        with self._pending_lock:
            if self._pending is not None:
                self.frames_dropped += 1
            self._pending = pending
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wakeup.set()
        else:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def on_end(self) -> None:
        """The source closed; nothing more will be sent."""
        self._closed = True
        self._wakeup.set()

    # -- feedback ----------------------------------------------------------------

    def _on_keyframe_request(self, ssrc: int) -> None:
        self.keyframe_requests += 1
        layer = self._layer_by_ssrc.get(ssrc)
        targets = [layer] if layer is not None else self._layers
        for target in targets:
            target.keyframe_wanted = True

    def _on_nack(self, ssrc: int, lost: list[int]) -> None:
        layer = self._layer_by_ssrc.get(ssrc)
        if layer is None:
            return
        layer.control.on_nack(lost)
        # On a lossy path a lone retransmission is lost as often as the original,
        # and an SFU asks only once: with a second copy right behind it only a
        # loss of both (loss squared) leaves the frame broken.
        copies = 2 if layer.control.loss > LOW_LOSS else 1
        for _, packet in layer.history.get_many(list(lost), time.monotonic()):
            for _ in range(copies):
                self._sender.send_rtp(packet)
            self.retransmissions += 1

    def _on_receiver_report(self, block: ReportBlock, rtt: float | None) -> None:
        layer = self._layer_by_ssrc.get(block.ssrc)
        if layer is not None:
            layer.control.on_report(block.fraction_lost / 256.0)

    def _adapt_to_loss(self, layer: _Layer, now: float) -> tuple[int, int]:
        """Apply the layer's loss-driven bitrate and scale; the size to encode."""
        decision = layer.control.update(now)
        if decision is not None:
            if decision.bitrate != layer.encoder.bitrate:
                layer.encoder.set_bitrate(decision.bitrate)
            if decision.scale != layer.scale:
                logger.debug(
                    "layer %s: %.0f%% loss, %d bps at %.3g of its size",
                    layer.rid,
                    100 * layer.control.loss,
                    decision.bitrate,
                    decision.scale,
                )
            layer.scale = decision.scale
        size = scaled_size(_even(layer.plan.width), _even(layer.plan.height), layer.scale)
        if size != (layer.encoder.width, layer.encoder.height):
            layer.encoder.set_resolution(*size)
        return size

    # -- encoding ----------------------------------------------------------------

    def _next_rtp_timestamp(self, captured_at: float) -> int:
        ticks = int((captured_at - self._clock_origin) * RTP_VIDEO_CLOCK_RATE)
        timestamp = (self._rtp_base + ticks) & 0xFFFFFFFF
        if self._last_rtp_timestamp is not None and ((timestamp - self._last_rtp_timestamp) & 0xFFFFFFFF) >= 0x80000000:
            timestamp = (self._last_rtp_timestamp + 1) & 0xFFFFFFFF
        elif timestamp == self._last_rtp_timestamp:
            timestamp = (timestamp + 1) & 0xFFFFFFFF
        self._last_rtp_timestamp = timestamp
        return timestamp

    def _media_clock(self, ssrc: int) -> tuple[int, float]:
        """Our RTP clock now, for sender reports: timestamps count capture instants (not sends)."""
        ticks = int((time.monotonic() - self._clock_origin) * RTP_VIDEO_CLOCK_RATE)
        return (self._rtp_base + ticks) & 0xFFFFFFFF, time.time()

    async def _encode_loop(self) -> None:
        while not self._closed:
            await self._wakeup.wait()
            self._wakeup.clear()
            with self._pending_lock:
                pending, self._pending = self._pending, None
            if pending is None or self._closed:
                continue
            try:
                await self._encode_and_send(pending)
            except Exception:
                logger.exception("encoding a %dx%d frame failed", pending.frame.width, pending.frame.height)

    async def _encode_and_send(self, pending: _PendingFrame) -> None:
        rtp_timestamp = self._next_rtp_timestamp(pending.captured_at)
        sent_metadata = restrict_to_features(pending.metadata, self._frame_metadata_features)
        extensions = {
            URI_ABS_CAPTURE_TIME: encode_abs_capture_time(capture_us_to_ntp_us(pending.timestamp_us)),
            URI_VIDEO_ORIENTATION: encode_video_orientation(rotation_to_degrees(pending.rotation)),
        }
        # every layer encodes at once, on a worker thread each; sent top layer first, each
        # as soon as it and the layers above it are done: the top layer is what
        # subscribers usually want, and an SFU that starts forwarding on the first
        # keyframe it sees then needs no layer switch. The top layer's job converts the
        # frame first; the pool starts jobs in order, so the others wait only on a
        # job that is already running.
        jobs: list[tuple[_Layer, bool, asyncio.Future[EncodedFrame]]] = []
        converted: concurrent.futures.Future[av.VideoFrame] = concurrent.futures.Future()
        source_size = (pending.frame.width, pending.frame.height)
        picture_taken = False
        for layer in reversed(self._layers):
            keyframe = layer.keyframe_wanted
            layer.keyframe_wanted = False
            width, height = self._adapt_to_loss(layer, time.monotonic())
            owns = not picture_taken and source_size == (width, height)
            picture_taken = picture_taken or owns
            layer_job = (owns, layer, width, height, keyframe, pending.captured_at, sent_metadata)
            if not jobs:
                job = self._loop.run_in_executor(None, _convert_then_encode, pending.frame, converted, *layer_job)
            else:
                job = self._loop.run_in_executor(None, _encode_layer, converted, *layer_job)
            jobs.append((layer, keyframe, job))
        try:
            for layer, keyframe, job in jobs:
                encoded = await job
                if self._closed:
                    return
                if keyframe and not (encoded and encoded.keyframe):
                    # rate control dropped the frame that was to be a keyframe: next one
                    layer.keyframe_wanted = True
                if encoded and encoded.keyframe:
                    self.keyframes_sent += 1
                    layer.keyframes_sent += 1
                await self._send_layer(layer, encoded, rtp_timestamp, extensions)
        finally:
            # a failed layer or a close must not leave the other layers' results unread
            await asyncio.gather(*(job for _, _, job in jobs), return_exceptions=True)
        self.frames_encoded += 1

    async def _send_layer(
        self, layer: _Layer, payloads: EncodedFrame, rtp_timestamp: int, extensions: dict[str, bytes]
    ) -> None:
        payload_type = self._payload_type()
        if payload_type is None or not payloads:
            return
        now = time.monotonic()
        last = len(payloads) - 1
        # No FEC or RTX is negotiated: on a lossy path packets that matter most
        # go out twice instead, the copies after the whole frame
        protect = layer.control.protects(payloads.keyframe)
        sent: list[bytes] = []
        for index, payload in enumerate(payloads):
            packet = self._sender.build_packet(
                payload,
                payload_type=payload_type,
                sequence_number=layer.sequence_number,
                timestamp=rtp_timestamp,
                marker=index == last,
                rid=layer.rid,
                ssrc=layer.ssrc,
                extensions=extensions,
            )
            layer.history.add(layer.sequence_number, packet, now)
            layer.sequence_number = (layer.sequence_number + 1) & 0xFFFF
            self._sender.send_rtp(packet)
            if protect:
                sent.append(packet)
            layer.control.on_packets_sent(1)
            layer.bytes_sent += len(payload)
            if index % _PACKETS_PER_BURST == _PACKETS_PER_BURST - 1 and index != last:
                # a keyframe is a hundred packets or more: let other callbacks run
                # between bursts instead of holding the loop for the whole frame
                await asyncio.sleep(0)
                if self._closed:
                    return
        for index, packet in enumerate(sent):
            self._sender.send_rtp(packet)
            self.packets_protecting += 1
            if index % _PACKETS_PER_BURST == _PACKETS_PER_BURST - 1:
                await asyncio.sleep(0)
                if self._closed:
                    return
        layer.frames_sent += 1

    def _payload_type(self) -> int | None:
        for codec in self._sender.codecs:
            if codec.payload_type is None:
                continue
            try:
                if normalize_codec(codec.mime_type) == self._codec:
                    return codec.payload_type
            except ValueError:
                continue
        return None

    async def close(self) -> None:
        """Stop encoding and sending. Idempotent."""
        if self._closed and self._task.done():
            return
        self._closed = True
        self._wakeup.set()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._sender.on_keyframe_request = None
        self._sender.on_nack = None
        self._sender.on_receiver_report = None
