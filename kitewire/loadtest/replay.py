"""Publishing without encoding live: a test pattern encoded once per layer, replayed as RTP by every publisher."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import struct
import time

from kitewire.frames.pattern import textured_frames
from kitewire.media import (
    PacketHistory,
    VideoEncoder,
    VideoLayerPlan,
    default_video_preset,
    parse_vp8_descriptor,
    plan_video_layers,
)
from kitewire.transport import RtpSender
from kitewire.transport.rtp import URI_ABS_CAPTURE_TIME, initial_sequence_number

from .params import NTP_UNIX_OFFSET, Q32_SCALE, LoadTestParams

logger = logging.getLogger("kitewire.loadtest")


# Placeholder abs-capture-time value, found in the header template to learn its offset.
_CAPTURE_TIME_SENTINEL = b"\xa5\x5a\xc3\x3c\x96\x69\x0f\xf0"
# Publisher-side retransmission buffer (packets per layer, and how long a packet is worth resending).
_HISTORY_SIZE = 1024
_HISTORY_AGE = 1.5
# A frame more than this late is skipped rather than sent in a burst.
_MAX_PACER_LAG = 0.5
# At most one loop restart (keyframe) per layer within this many seconds.
_MIN_KEYFRAME_INTERVAL = 0.2
_RTP_CLOCK = 90_000
_pack_q64 = struct.Struct("!Q").pack_into


@dataclasses.dataclass(frozen=True)
class EncodedLoop:
    """A few seconds of encoded video as RTP payloads, frame 0 a keyframe.

    VP8 payloads carry kitewire's 4-byte descriptor (X and I bits, 15-bit
    PictureID in bytes 2-3), which the replayer overwrites per frame. H264
    payloads (single NAL, STAP-A, FU-A) are sent as they are; every IDR has its
    SPS/PPS in front.
    """

    width: int
    height: int
    framerate: float
    bitrate: int
    frames: tuple[tuple[bytes, ...], ...]
    codec: str = "VP8"

    @property
    def kbps(self) -> float:
        """Average payload bitrate of the loop, in kbps."""
        total = sum(len(p) for frame in self.frames for p in frame)
        return total * 8 / 1000 / (len(self.frames) / self.framerate)

    @property
    def packets_per_second(self) -> float:
        """Average RTP packets per second of the loop."""
        return sum(len(frame) for frame in self.frames) / (len(self.frames) / self.framerate)


def encode_loop(
    width: int, height: int, bitrate: int, framerate: float, seconds: float, codec: str = "VP8"
) -> EncodedLoop:
    """Encode ``seconds`` of the test pattern once (blocking; call it in a worker thread).

    ``codec`` is "VP8" or "H264".
    """
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise ValueError(f"loop size: expected even width and height >= 16, got {width}x{height}")
    if codec not in ("VP8", "H264"):
        raise ValueError(f"loop codec: expected 'VP8' or 'H264', got {codec!r}")
    count = max(2, round(seconds * framerate))
    encoder = VideoEncoder(codec, width, height, bitrate=bitrate, framerate=framerate)
    frames: list[tuple[bytes, ...]] = []
    try:
        for index, picture in enumerate(textured_frames(width, height, count)):
            payloads = encoder.encode(picture, keyframe=index == 0)
            if index == 0 and not payloads.keyframe:
                raise RuntimeError(f"the {codec} encoder did not start the loop with a keyframe")
            for payload in payloads if codec == "VP8" else ():
                # The replay rewrites the PictureID in place at bytes 2-3.
                descriptor = parse_vp8_descriptor(payload)
                if not descriptor.picture_id_15bit or descriptor.header_size < 4 or payload[2] & 0x80 == 0:
                    raise RuntimeError(f"expected VP8 payloads with a 15-bit PictureID at bytes 2-3, got {descriptor}")
            # A rate-control drop yields nothing: the replay then simply sends
            # nothing for that frame slot, as a real sender would.
            frames.append(tuple(bytes(p) for p in payloads))
    finally:
        encoder.close()
    return EncodedLoop(width, height, float(framerate), bitrate, tuple(frames), codec)


def layer_plans(params: LoadTestParams) -> list[VideoLayerPlan]:
    width, height = params.size
    # The browser SDK's choice of bitrate (1.7 Mbps for 720p) rather than the
    # Rust SDK's (which gives 720p the 1080p preset's 3 Mbps).
    plans = plan_video_layers(width, height, simulcast=params.simulcast, sdk="js")
    preset = default_video_preset(width, height, sdk="js")
    # A single JS encoding carries no limits of its own; the loop needs a
    # bitrate and a framerate to be encoded at, so take the preset's.
    return [
        dataclasses.replace(
            plan,
            max_bitrate=plan.max_bitrate or preset.max_bitrate,
            max_framerate=plan.max_framerate or preset.max_framerate,
        )
        for plan in plans
    ]


async def encode_loops(params: LoadTestParams) -> dict[str, EncodedLoop]:
    """One loop per layer rid (the same loops serve every publisher)."""
    loop = asyncio.get_running_loop()
    loops: dict[str, EncodedLoop] = {}
    for plan in layer_plans(params):
        width = max(16, plan.width - plan.width % 2)
        height = max(16, plan.height - plan.height % 2)
        codec = "H264" if params.video_codec == "h264" else "VP8"
        loops[plan.rid] = await loop.run_in_executor(
            None,
            encode_loop,
            width,
            height,
            int(plan.max_bitrate),
            float(plan.max_framerate),
            params.loop_seconds,
            codec,
        )
    return loops


_pack_seq_ts = struct.Struct("!HI").pack_into
# A padding-only RTP payload: 224 bytes, the last one saying how many.
_PADDING_PAYLOAD = bytes(223) + bytes([224])


class LayerReplay:
    """Sends one layer of one publisher: the loop's payloads under fresh RTP numbering."""

    def __init__(self, sender: RtpSender, loop: EncodedLoop, rid: str | None, ssrc: int, payload_type: int) -> None:
        self.sender = sender
        self.loop = loop
        self.ssrc = ssrc
        self.payload_type = payload_type
        # Header with the mid (and rid) extensions, built once; each packet
        # copies it and patches sequence number, timestamp and marker.
        template = sender.build_packet(
            b"",
            payload_type=payload_type,
            sequence_number=0,
            timestamp=0,
            rid=rid,
            ssrc=ssrc,
            extensions={URI_ABS_CAPTURE_TIME: _CAPTURE_TIME_SENTINEL},
        )
        self.template = bytearray(template)
        self.header_size = len(template)
        # Where the send time goes (-1 when abs-capture-time was not negotiated);
        # subscribers measure latency from it.
        self.capture_time_at = template.find(_CAPTURE_TIME_SENTINEL)
        self.patch_picture_id = loop.codec == "VP8"
        self.sequence_number = initial_sequence_number()
        self.picture_id = random.randrange(0x8000)
        self.rtp_base = random.randrange(1 << 32)
        self.interval = 1.0 / loop.framerate
        self.started_at = 0.0
        self.next_due = 0.0
        self.index = 0
        self.restart_wanted = False
        self.last_keyframe_at = -1.0
        self.history = PacketHistory(max_packets=_HISTORY_SIZE, max_age=_HISTORY_AGE)
        self.frames_sent = 0
        self.keyframes_sent = 0
        self.frames_skipped = 0
        self.packets_sent = 0
        self.retransmitted = 0
        self.keyframe_requests = 0
        #: False: keyframe requests are counted but not answered, as if each were lost on the way.
        self.answers_keyframe_requests = True
        #: Leave out every n-th media packet (0: none): loss on the uplink, for the server's NACKs to repair.
        self.drop_every = 0
        self.dropped = 0
        #: After every n-th media packet send two padding-only packets (0: never), as libwebrtc's
        #: bandwidth probes arrive when RTX is not negotiated; the server must not forward them.
        self.padding_every = 0
        self.padding_sent = 0

    def start(self, now: float) -> None:
        self.started_at = now
        self.next_due = now

    def send_due(self, now: float) -> float:
        """Send every frame whose time has come; return when the next one is due."""
        if now - self.next_due > _MAX_PACER_LAG:
            # The event loop stalled: drop the backlog instead of bursting it.
            missed = int((now - self.next_due) / self.interval)
            self.frames_skipped += missed
            self.index = (self.index + missed) % len(self.loop.frames)
            self.next_due += missed * self.interval
        while self.next_due <= now:
            self._send_frame(self.next_due)
            self.next_due += self.interval
        return self.next_due

    def _send_frame(self, due: float) -> None:
        frames = self.loop.frames
        if self.restart_wanted and due - self.last_keyframe_at >= _MIN_KEYFRAME_INTERVAL:
            self.index = 0
        self.restart_wanted = False
        if self.index == 0:
            self.last_keyframe_at = due
            self.keyframes_sent += 1
        payloads = frames[self.index]
        self.index = (self.index + 1) % len(frames)
        timestamp = (self.rtp_base + int((due - self.started_at) * _RTP_CLOCK)) & 0xFFFFFFFF
        if not payloads:
            return
        pid_hi = 0x80 | (self.picture_id >> 8)
        pid_lo = self.picture_id & 0xFF
        self.picture_id = (self.picture_id + 1) & 0x7FFF
        template = self.template
        if self.capture_time_at >= 0:
            _pack_q64(template, self.capture_time_at, int((time.time() + NTP_UNIX_OFFSET) * Q32_SCALE))
        at = self.header_size
        last = len(payloads) - 1
        send = self.sender.send_rtp
        patch_picture_id = self.patch_picture_id
        drop_every, padding_every = self.drop_every, self.padding_every
        for number, payload in enumerate(payloads):
            packet = bytearray(template)
            packet += payload
            seq = self.sequence_number
            _pack_seq_ts(packet, 2, seq, timestamp)
            if number == last:
                packet[1] |= 0x80
            if patch_picture_id:
                packet[at + 2] = pid_hi
                packet[at + 3] = pid_lo
            self.packets_sent += 1
            if drop_every and self.packets_sent % drop_every == 0:
                self.dropped += 1
            else:
                send(packet)
            self._remember(seq, packet)
            if padding_every and self.packets_sent % padding_every == 0:
                self._send_padding(timestamp)
        self.frames_sent += 1

    def _remember(self, seq: int, packet: bytearray) -> None:
        self.history.add(seq, bytes(packet), time.monotonic())
        self.sequence_number = (seq + 1) & 0xFFFF

    def _send_padding(self, timestamp: int) -> None:
        for _ in range(2):
            probe = bytearray(self.template)
            probe += _PADDING_PAYLOAD
            probe[0] |= 0x20  # P bit: the whole payload is padding
            seq = self.sequence_number
            _pack_seq_ts(probe, 2, seq, timestamp)
            self.sender.send_rtp(probe)
            self._remember(seq, probe)
            self.padding_sent += 1

    def on_nack(self, lost: list[int]) -> None:
        for _, packet in self.history.get_many(lost, time.monotonic()):
            self.sender.send_rtp(packet)
            self.retransmitted += 1


class Pacer:
    """One task sending every publisher's frames on time."""

    def __init__(self) -> None:
        self.layers: list[LayerReplay] = []
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    def add(self, layer: LayerReplay) -> None:
        layer.start(time.monotonic())
        self.layers.append(layer)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            next_due = now + 0.1
            for layer in self.layers:
                try:
                    next_due = min(next_due, layer.send_due(now))
                except Exception:
                    logger.exception("sending a frame failed")
            self._wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(0.0, next_due - time.monotonic()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
