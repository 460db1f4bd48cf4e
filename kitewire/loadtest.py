"""``kitewire load-test``: simulate video publishers and subscribers against a server.

Modelled on LiveKit's ``lk load-test``. Every simulated participant is a real
client on the wire, built on the SDK's own protocol client
(:class:`kitewire.engine.WireClient`): it joins through the signal protocol,
publishes with an AddTrackRequest and a publisher offer, or lets the server
subscribe it (over ``/rtc`` answering the server's offers, or with
``--single-pc`` over ``/rtc/v1`` offering receive slots). What is cheap about it:

* Publishers do not encode live. A moving test pattern is encoded ONCE per
  layer (VP8 by default, or H264; a few seconds starting with a keyframe) into
  RTP payloads; every publisher replays that loop with its own SSRC, sequence
  numbers, timestamps and (VP8) picture ids. A keyframe request restarts the
  loop at its keyframe.
* Subscribers do not decode. They count RTP packets and payload bytes per track
  and detect loss from sequence-number gaps, as ``lk load-test`` does
  (loss % = lost / (received + lost)). Once per frame they read the
  abs-capture-time the publisher stamped (its send time; the server forwards
  the extension) for the frame latency, and compare what arrived with what
  the publisher sent ("delivered"): a server that falls behind queues packets
  without gaps, which only this shows.

All simulated participants share one event loop. Counting happens over a
measuring window that starts once every subscriber receives every published
track. When the server's process id is known (``--embedded`` starts
``kitewire serve`` in a child process; ``--server-pid`` names one) the server's
CPU time over that window (``/proc/<pid>/stat`` utime + stime) is divided by the
packets the subscribers received: microseconds of server CPU per forwarded
packet.

Bounded on purpose: loopback servers only, at most :data:`MAX_SUBSCRIBERS`
subscribers, :data:`MAX_PUBLISHERS` publishers and :data:`MAX_DURATION` seconds,
an overall deadline, and every connection (and an embedded server) closed at the
end, on error and on Ctrl-C too.

From Python::

    result = await run_load_test(LoadTestParams(embedded=True, subscribers=10, duration=5))
    print(format_report(result))
    result.cpu_us_per_packet, result.loss_percent, result.median_kbps, result.mean_latency_ms
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import random
import secrets
import signal
import statistics
import struct
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import av
import numpy as np
from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from kitewire.bench.procfs import process_cpu_seconds, run_queue_wait_seconds
from kitewire.bench.server_process import EmbeddedServer
from kitewire.engine.wire import EngineError, IncomingTrack, WireClient, add_track_request
from kitewire.media import (
    PacketHistory,
    VideoEncoder,
    VideoLayerPlan,
    default_video_preset,
    parse_vp8_descriptor,
    plan_video_layers,
)
from kitewire.signal import SignalConnectError, create_token
from kitewire.signal.token import DEV_API_KEY, DEV_API_SECRET
from kitewire.transport import PeerConnectionConfig, RtpHeader, RtpSender, Transceiver
from kitewire.transport.rtp import URI_ABS_CAPTURE_TIME, initial_sequence_number

__all__ = [
    "MAX_DURATION",
    "MAX_PUBLISHERS",
    "MAX_SUBSCRIBERS",
    "RESOLUTIONS",
    "VIDEO_CODECS",
    "EmbeddedServer",
    "EncodedLoop",
    "LoadTestParams",
    "LoadTestResult",
    "TrackResult",
    "add_arguments",
    "encode_loop",
    "format_report",
    "run",
    "run_load_test",
]

logger = logging.getLogger("kitewire.loadtest")

#: Largest number of simulated subscribers accepted.
MAX_SUBSCRIBERS = 200
#: Largest number of simulated video publishers accepted.
MAX_PUBLISHERS = 50
#: Longest measuring window accepted, in seconds.
MAX_DURATION = 600.0

#: ``--resolution`` names -> (width, height) of the published track.
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "180p": (320, 180),
    "360p": (640, 360),
    "540p": (960, 540),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
}

#: ``--video-codec`` names -> mime type.
VIDEO_CODECS: dict[str, str] = {"vp8": "video/VP8", "h264": "video/H264"}
_RTP_CLOCK = 90_000
# Seconds between the NTP (1900) and Unix (1970) epochs: abs-capture-time is NTP.
_NTP_UNIX_OFFSET = 2_208_988_800
_Q32 = float(1 << 32)
_unpack_q64 = struct.Struct("!Q").unpack_from
_pack_q64 = struct.Struct("!Q").pack_into
# Placeholder abs-capture-time value, found in the header template to learn its offset.
_CAPTURE_TIME_SENTINEL = b"\xa5\x5a\xc3\x3c\x96\x69\x0f\xf0"
_LOOPBACK_NAMES = {"localhost"}

# Joins in flight at once: each one is a WebSocket, two DTLS handshakes and SDP
# work on the server; a burst of 200 would measure the join storm, not forwarding.
_JOIN_CONCURRENCY = 8
# Seconds per participant allowed for joining and negotiating.
_JOIN_TIMEOUT = 20.0
# A frame more than this late is skipped rather than sent in a burst.
_MAX_PACER_LAG = 0.5
# At most one loop restart (keyframe) per layer within this many seconds.
_MIN_KEYFRAME_INTERVAL = 0.2
# Pause between "everyone receives" and the measuring window.
_SETTLE_SECONDS = 1.0
# Publisher-side retransmission buffer (packets per layer, and how long a packet is worth resending).
_HISTORY_SIZE = 1024
_HISTORY_AGE = 1.5


# --------------------------------------------------------------------------
# parameters and results
# --------------------------------------------------------------------------


def _is_loopback_host(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass
class LoadTestParams:
    """What to simulate. ``url`` is ignored when ``embedded`` (a child server is started).

    ``warmup`` is the longest wait (seconds) for every subscriber to receive
    every track before measuring starts anyway; ``loop_seconds`` the length of
    the pre-encoded video loop.
    """

    url: str = "ws://127.0.0.1:7880"
    api_key: str = DEV_API_KEY
    api_secret: str = DEV_API_SECRET
    room: str = "load-test"
    video_publishers: int = 1
    subscribers: int = 1
    duration: float = 10.0
    resolution: str = "720p"
    video_codec: str = "vp8"
    simulcast: bool = True
    #: Subscribers join like livekit 1.x SDKs: /rtc/v1 and one PeerConnection
    #: (else /rtc with a publisher and a subscriber PeerConnection).
    single_pc: bool = False
    server_pid: int | None = None
    embedded: bool = False
    warmup: float = 15.0
    loop_seconds: float = 3.0

    def validate(self) -> None:
        """Raise ValueError naming the expected and the given value of the first bad setting."""
        for name, value, limit in (
            ("video publishers", self.video_publishers, MAX_PUBLISHERS),
            ("subscribers", self.subscribers, MAX_SUBSCRIBERS),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
                raise ValueError(f"{name}: expected 0..{limit}, got {value!r}")
        if self.video_publishers == 0:
            raise ValueError("video publishers: expected at least 1 (nothing to forward otherwise), got 0")
        if not isinstance(self.duration, (int, float)) or not 1 <= self.duration <= MAX_DURATION:
            raise ValueError(f"duration: expected 1..{MAX_DURATION:g} seconds, got {self.duration!r}")
        if not isinstance(self.warmup, (int, float)) or not 0 <= self.warmup <= 120:
            raise ValueError(f"warmup: expected 0..120 seconds, got {self.warmup!r}")
        if not isinstance(self.loop_seconds, (int, float)) or not 0.5 <= self.loop_seconds <= 10:
            raise ValueError(f"loop seconds: expected 0.5..10, got {self.loop_seconds!r}")
        if self.video_codec not in VIDEO_CODECS:
            raise ValueError(f"video codec: expected one of {', '.join(VIDEO_CODECS)}, got {self.video_codec!r}")
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution: expected one of {', '.join(RESOLUTIONS)}, got {self.resolution!r}")
        if not self.room or len(self.room) > 128:
            raise ValueError(f"room: expected a name of 1..128 characters, got {self.room!r}")
        if not self.api_key or not self.api_secret:
            raise ValueError("api key and secret: expected both non-empty, got an empty one")
        if self.server_pid is not None:
            if not isinstance(self.server_pid, int) or self.server_pid <= 0:
                raise ValueError(f"server pid: expected a positive process id, got {self.server_pid!r}")
            if not os.path.exists(f"/proc/{self.server_pid}/stat"):
                raise ValueError(f"server pid: expected a running process, got {self.server_pid} (no /proc entry)")
        if self.embedded:
            return
        try:
            parts = urlsplit(self.url)
            host = parts.hostname or ""
        except ValueError as exc:
            raise ValueError(f"url: expected ws://127.0.0.1:<port>, got {self.url!r} ({exc})") from None
        if parts.scheme not in ("ws", "wss", "http", "https"):
            raise ValueError(f"url: expected a ws:// or wss:// URL, got {self.url!r}")
        if not _is_loopback_host(host):
            raise ValueError(
                f"url: expected a server on the loopback interface (127.0.0.1), got host {host!r}; "
                "load tests stay on this machine"
            )

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the published video."""
        return RESOLUTIONS[self.resolution]


@dataclasses.dataclass(frozen=True)
class TrackResult:
    """What one subscriber received of one track during the measuring window."""

    subscriber: str
    track_sid: str
    packets: int
    payload_bytes: int
    lost: int
    seconds: float
    #: Packets of the forwarded layer the track's publisher sent in the window.
    expected: int = 0
    #: Send-to-receive delay of frames (from abs-capture-time), milliseconds; None without samples.
    mean_latency_ms: float | None = None
    max_latency_ms: float | None = None

    @property
    def delivered_percent(self) -> float | None:
        """Packets received / packets the publisher sent on the forwarded layer (None if unknown).

        Well below 100% while loss is 0: the server (or this machine) falls
        behind and packets queue up in socket buffers.
        """
        return 100.0 * self.packets / self.expected if self.expected else None

    @property
    def kbps(self) -> float:
        """Payload bitrate in kilobits per second."""
        return self.payload_bytes * 8 / 1000 / self.seconds if self.seconds > 0 else 0.0

    @property
    def loss_percent(self) -> float:
        """lost / (received + lost), in percent."""
        total = self.packets + self.lost
        return 100.0 * self.lost / total if total else 0.0


@dataclasses.dataclass
class LoadTestResult:
    """The outcome of one load test."""

    params: LoadTestParams
    tracks: list[TrackResult]
    subscribers: list[str]
    expected_tracks: int
    window_seconds: float
    errors: dict[str, str]
    #: What the publishers sent in the window: packets, frames and keyframes
    #: (a keyframe request restarts the loop at its keyframe).
    publisher_packets: int = 0
    publisher_frames: int = 0
    publisher_keyframes: int = 0
    server_pid: int | None = None
    server_cpu_seconds: float | None = None
    #: CPU the load-test process itself used in the window (near a full core = client-bound figures).
    client_cpu_seconds: float = 0.0
    #: Seconds the server's / this process's main thread was runnable but waited for a CPU
    #: (``/proc/<pid>/schedstat``): a busy machine, not the server, then sets the limits.
    server_wait_seconds: float | None = None
    client_wait_seconds: float | None = None

    @property
    def packets_forwarded(self) -> int:
        """Packets all subscribers received in the measuring window."""
        return sum(t.packets for t in self.tracks)

    @property
    def packets_lost(self) -> int:
        """Sequence-number gaps summed over all subscribers and tracks."""
        return sum(t.lost for t in self.tracks)

    @property
    def loss_percent(self) -> float:
        """Overall lost / (received + lost), in percent."""
        total = self.packets_forwarded + self.packets_lost
        return 100.0 * self.packets_lost / total if total else 0.0

    @property
    def median_kbps(self) -> float:
        """Median per-track payload bitrate (0 when nothing arrived)."""
        return statistics.median([t.kbps for t in self.tracks]) if self.tracks else 0.0

    @property
    def cpu_us_per_packet(self) -> float | None:
        """Server CPU microseconds per forwarded packet, when the server pid was known."""
        if self.server_cpu_seconds is None or self.packets_forwarded == 0:
            return None
        return self.server_cpu_seconds * 1e6 / self.packets_forwarded

    @property
    def server_cpu_percent(self) -> float | None:
        """Server CPU use over the window, in percent of one core."""
        if self.server_cpu_seconds is None or self.window_seconds <= 0:
            return None
        return 100.0 * self.server_cpu_seconds / self.window_seconds

    @property
    def delivered_percent(self) -> float | None:
        """Packets received / packets the publishers sent on forwarded layers, over all tracks."""
        expected = sum(t.expected for t in self.tracks)
        return 100.0 * self.packets_forwarded / expected if expected else None

    @property
    def mean_latency_ms(self) -> float | None:
        """Mean frame latency over tracks with samples (None without any)."""
        values = [t.mean_latency_ms for t in self.tracks if t.mean_latency_ms is not None]
        return statistics.fmean(values) if values else None

    @property
    def max_latency_ms(self) -> float | None:
        """Largest frame latency seen in the window (None without samples)."""
        values = [t.max_latency_ms for t in self.tracks if t.max_latency_ms is not None]
        return max(values) if values else None

    def tracks_of(self, subscriber: str) -> list[TrackResult]:
        """The tracks one subscriber received."""
        return [t for t in self.tracks if t.subscriber == subscriber]

    @property
    def complete(self) -> bool:
        """True when every subscriber received packets on every expected track, without errors."""
        if self.errors:
            return False
        for name in self.subscribers:
            got = [t for t in self.tracks_of(name) if t.packets > 0]
            if len(got) < self.expected_tracks:
                return False
        return True


# --------------------------------------------------------------------------
# the pre-encoded video loop
# --------------------------------------------------------------------------


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


def _pattern_frames(width: int, height: int, count: int, seed: int = 5) -> list[av.VideoFrame]:
    """A moving test pattern: smooth random texture panning, a sliding box, a flashing bar.

    Smooth (upscaled) noise keeps libvpx near its target bitrate; raw noise
    would make every frame a worst case.
    """
    import cv2  # opencv-python-headless, a test-pattern helper only

    rng = np.random.default_rng(seed)
    pan = 4
    tex_w = width + pan * count
    small = rng.integers(0, 256, (max(2, height // 16), max(2, tex_w // 16)), dtype=np.uint8)
    texture: np.ndarray[Any, np.dtype[np.uint8]] = np.asarray(
        cv2.resize(small, (tex_w, height), interpolation=cv2.INTER_CUBIC), dtype=np.uint8
    )
    box = max(8, width // 8)
    frames: list[av.VideoFrame] = []
    chroma_rows = height // 4
    for index in range(count):
        luma: np.ndarray[Any, np.dtype[np.uint8]] = texture[:, index * pan : index * pan + width].copy()
        left = (index * max(1, width // 100)) % max(1, width - box)
        top = height // 4
        luma[top : top + box, left : left + box] = 235
        bar = height * 5 // 9
        luma[bar : bar + max(2, height // 36), :] = (index * 7) % 256
        u_plane = np.full((chroma_rows, width), (96 + index) % 256, dtype=np.uint8)
        v_plane = np.full((chroma_rows, width), 160, dtype=np.uint8)
        frames.append(av.VideoFrame.from_ndarray(np.concatenate([luma, u_plane, v_plane]), format="yuv420p"))
    return frames


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
        for index, picture in enumerate(_pattern_frames(width, height, count)):
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


def _layer_plans(params: LoadTestParams) -> list[VideoLayerPlan]:
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


async def _encode_loops(params: LoadTestParams) -> dict[str, EncodedLoop]:
    """One loop per layer rid (the same loops serve every publisher)."""
    loop = asyncio.get_running_loop()
    loops: dict[str, EncodedLoop] = {}
    for plan in _layer_plans(params):
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


# --------------------------------------------------------------------------
# server CPU
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# publishing: replay the loop as RTP
# --------------------------------------------------------------------------

_pack_seq_ts = struct.Struct("!HI").pack_into
# A padding-only RTP payload: 224 bytes, the last one saying how many.
_PADDING_PAYLOAD = bytes(223) + bytes([224])


class _LayerReplay:
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
            _pack_q64(template, self.capture_time_at, int((time.time() + _NTP_UNIX_OFFSET) * _Q32))
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


class _Pacer:
    """One task sending every publisher's frames on time."""

    def __init__(self) -> None:
        self.layers: list[_LayerReplay] = []
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    def add(self, layer: _LayerReplay) -> None:
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


# --------------------------------------------------------------------------
# subscribing: count what arrives
# --------------------------------------------------------------------------


class _TrackCounter:
    """Per-track counters updated for every received packet; nothing is decoded."""

    __slots__ = (
        "capture_time_id",
        "last_seq",
        "latency_count",
        "latency_max",
        "latency_sum",
        "lost",
        "packets",
        "payload_bytes",
        "track_sid",
    )

    def __init__(self, track_sid: str, capture_time_id: int | None = None) -> None:
        self.track_sid = track_sid
        self.packets = 0
        self.payload_bytes = 0
        self.lost = 0
        self.last_seq = -1
        self.capture_time_id = capture_time_id
        self.latency_sum = 0.0
        self.latency_count = 0
        self.latency_max = 0.0

    def on_rtp(self, data: bytes, header: RtpHeader) -> None:
        seq = header.sequence_number
        last = self.last_seq
        self.packets += 1
        self.payload_bytes += header.payload_end - header.payload_offset
        if header.marker and self.capture_time_id is not None:
            # Once per frame: its last packet's arrival against the publisher's send time.
            value = header.extensions.get(self.capture_time_id)
            if value is not None and len(value) >= 8:
                latency = time.time() + _NTP_UNIX_OFFSET - _unpack_q64(value)[0] / _Q32
                self.latency_sum += latency
                self.latency_count += 1
                if latency > self.latency_max:
                    self.latency_max = latency
        if last < 0:
            self.last_seq = seq
            return
        delta = (seq - last) & 0xFFFF
        if delta == 1:
            self.last_seq = seq
        elif 1 < delta < 0x8000:
            self.lost += delta - 1
            self.last_seq = seq
        elif delta >= 0x8000 and self.lost:
            # An older packet (retransmission or reordering) fills a gap counted before.
            self.lost -= 1

    def snapshot(self) -> tuple[int, int, int, float, int]:
        return self.packets, self.payload_bytes, self.lost, self.latency_sum, self.latency_count


# --------------------------------------------------------------------------
# one simulated participant
# --------------------------------------------------------------------------


class _SimulatedParticipant:
    """A client on the wire (:class:`~kitewire.engine.WireClient`) whose tracks are replayed loops and counters."""

    def __init__(self, name: str, identity: str) -> None:
        self.name = name
        self.identity = identity
        self.wire: WireClient | None = None
        self.counters: dict[str, _TrackCounter] = {}  # by track sid
        #: The receiving m-line of each counted track (by track sid).
        self.receivers: dict[str, Transceiver] = {}
        self._counted_mids: set[str] = set()
        self.layers: list[_LayerReplay] = []
        self.track_sid = ""
        self.error: str | None = None

    # -- connection --------------------------------------------------------

    async def connect(self, url: str, token: str, *, subscribe: bool, timeout: float, single_pc: bool = False) -> None:
        """Join. ``single_pc``: /rtc/v1 with one PeerConnection (livekit 1.x SDKs), else /rtc with two."""
        self.wire = WireClient(self, PeerConnectionConfig(loopback_only=True, ice_servers=[]))
        await self.wire.connect(
            url, token, auto_subscribe=subscribe, join_mode="v1" if single_pc else "legacy", timeout=timeout
        )

    def on_signal_message(self, message: pb_rtc.SignalResponse) -> None:
        """WireListener: nothing else matters to a simulated participant."""

    def on_signal_closed(self, reason: int, reconnectable: bool, detail: str) -> None:
        """WireListener: the run goes on without this participant; the error says why."""
        if self.error is None:
            self.error = detail

    def on_media_failed(self) -> None:
        """WireListener: a PeerConnection failed."""
        if self.error is None:
            self.error = "a media connection failed"

    async def on_incoming_tracks(self, tracks: list[IncomingTrack]) -> None:
        """WireListener: count every newly arriving video track (an m-line is never counted twice)."""
        for track in tracks:
            if track.kind != "video" or track.mid in self._counted_mids:
                continue
            counter = self.counters.get(track.track_sid)
            if counter is None:
                capture_time_id = track.transceiver.receiver.header_extensions.get(URI_ABS_CAPTURE_TIME)
                counter = self.counters[track.track_sid] = _TrackCounter(track.track_sid, capture_time_id)
            self._counted_mids.add(track.mid)
            self.receivers[track.track_sid] = track.transceiver
            # The bound method itself: no wrapper call per packet.
            track.transceiver.receiver.on_rtp = counter.on_rtp

    @property
    def single_pc(self) -> bool:
        """True when joined over /rtc/v1 with one PeerConnection."""
        return self.wire is not None and self.wire.single_pc

    def tracks_receiving(self) -> int:
        """How many tracks delivered at least one packet."""
        return sum(1 for counter in self.counters.values() if counter.packets > 0)

    # -- publishing --------------------------------------------------------

    async def publish(
        self,
        loops: dict[str, EncodedLoop],
        plans: list[VideoLayerPlan],
        simulcast: bool,
        pacer: _Pacer,
        timeout: float,
        mime_type: str = "video/VP8",
    ) -> str:
        """Announce a video track, negotiate it, and start replaying the loop(s); returns the track sid.

        Raises EngineError when the server refuses or does not answer."""
        wire = self.wire
        if wire is None:
            raise EngineError("not connected")
        cid = f"TR_load_{secrets.token_hex(6)}"
        name = "video-simulcast" if simulcast else "video"
        camera = pb_models.TrackSource.CAMERA
        request = add_track_request(
            cid=cid, name=name, source=camera, codec=mime_type, layers=plans, simulcast=simulcast
        )
        info = await wire.request_track(request, timeout)
        transceiver = wire.add_video_sender(cid, mime_type, plans, simulcast)
        await wire.negotiate(timeout)

        sender = transceiver.sender
        payload_type = next(
            (
                c.payload_type
                for c in sender.codecs
                if c.mime_type.lower() == mime_type.lower() and c.payload_type is not None
            ),
            None,
        )
        if payload_type is None:
            raise EngineError(f"the server did not accept {mime_type}")
        by_ssrc: dict[int, _LayerReplay] = {}
        for plan in plans:
            rid = plan.rid if simulcast else None
            ssrc = sender.ssrc_for_rid(plan.rid) if simulcast else sender.ssrc
            replay = _LayerReplay(sender, loops[plan.rid], rid, ssrc, payload_type)
            by_ssrc[ssrc] = replay
            self.layers.append(replay)

        def on_keyframe_request(media_ssrc: int) -> None:
            targets = [by_ssrc[media_ssrc]] if media_ssrc in by_ssrc else list(by_ssrc.values())
            for target in targets:
                target.keyframe_requests += 1
                target.restart_wanted = True

        def on_nack(media_ssrc: int, lost: list[int]) -> None:
            replay = by_ssrc.get(media_ssrc)
            if replay is not None:
                replay.on_nack(lost)

        sender.on_keyframe_request = on_keyframe_request
        sender.on_nack = on_nack
        for replay in self.layers:
            pacer.add(replay)
        self.track_sid = info.sid
        return info.sid

    # -- leaving -----------------------------------------------------------

    async def close(self) -> None:
        """Leave and close everything. Idempotent; never raises."""
        if self.wire is not None:
            with contextlib.suppress(Exception):
                await self.wire.close(leave=True)


# --------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------


async def _join(
    participant: _SimulatedParticipant,
    url: str,
    token: str,
    gate: asyncio.Semaphore,
    *,
    subscribe: bool,
    publish: Callable[[], Coroutine[Any, Any, str]] | None,
    single_pc: bool = False,
) -> None:
    async with gate:
        try:
            await participant.connect(url, token, subscribe=subscribe, timeout=_JOIN_TIMEOUT, single_pc=single_pc)
            if publish is not None:
                await publish()
        except (EngineError, SignalConnectError, ConnectionError, OSError, ValueError, TimeoutError) as exc:
            participant.error = f"could not connect: {exc or type(exc).__name__}"
        except Exception as exc:  # one broken participant must not end the whole run
            logger.debug("%s failed to join", participant.name, exc_info=True)
            participant.error = f"could not connect: {type(exc).__name__}: {exc}"


def _snapshot(subscribers: list[_SimulatedParticipant]) -> dict[tuple[str, str], tuple[int, int, int, float, int]]:
    return {(sub.name, sid): counter.snapshot() for sub in subscribers for sid, counter in list(sub.counters.items())}


def _sent(publishers: list[_SimulatedParticipant]) -> tuple[int, int, int]:
    layers = [layer for p in publishers for layer in p.layers]
    return (
        sum(layer.packets_sent for layer in layers),
        sum(layer.frames_sent for layer in layers),
        sum(layer.keyframes_sent for layer in layers),
    )


async def run_load_test(params: LoadTestParams, *, log: Callable[[str], None] = print) -> LoadTestResult:
    """Run one load test and return its counts (``log`` receives progress lines).

    Raises ValueError for bad parameters and RuntimeError when an embedded
    server cannot start. Everything it opened is closed before it returns.
    """
    params.validate()
    # The whole run is bounded, whatever the server does.
    budget = params.warmup + params.duration + 60.0 + 1.0 * (params.video_publishers + params.subscribers)
    async with contextlib.AsyncExitStack() as stack:
        url, server_pid = params.url, params.server_pid
        if params.embedded:
            server = EmbeddedServer()
            await server.start()
            stack.push_async_callback(server.stop)
            url, server_pid = server.url, server.pid
            log(f"Started kitewire serve (pid {server.pid}) at {url}")
        try:
            return await asyncio.wait_for(_encode_and_run(params, url, server_pid, stack, log), budget)
        except TimeoutError:
            raise TimeoutError(f"the load test did not finish within its {budget:g} s budget") from None


async def _encode_and_run(
    params: LoadTestParams,
    url: str,
    server_pid: int | None,
    stack: contextlib.AsyncExitStack,
    log: Callable[[str], None],
) -> LoadTestResult:
    started = time.monotonic()
    loops = await _encode_loops(params)
    described = ", ".join(
        f"{rid or 'single'} {loop.width}x{loop.height}@{loop.framerate:g} {loop.kbps:.0f} kbps"
        for rid, loop in loops.items()
    )
    log(f"Encoded the {params.video_codec.upper()} loop once in {time.monotonic() - started:.1f} s: {described}")
    log(
        f"Starting load test with {params.video_publishers} video publishers, "
        f"{params.subscribers} subscribers, room: {params.room}"
    )
    return await _run_participants(params, url, server_pid, loops, stack, log)


async def _run_participants(
    params: LoadTestParams,
    url: str,
    server_pid: int | None,
    loops: dict[str, EncodedLoop],
    stack: contextlib.AsyncExitStack,
    log: Callable[[str], None],
) -> LoadTestResult:
    prefix = secrets.token_hex(3)
    plans = _layer_plans(params)
    pacer = _Pacer()
    stack.push_async_callback(pacer.stop)
    participants: list[_SimulatedParticipant] = []

    async def close_all() -> None:
        await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)

    # Registered after the pacer: closed first, so nothing sends into closed connections.
    stack.push_async_callback(close_all)
    gate = asyncio.Semaphore(_JOIN_CONCURRENCY)

    def token_for(identity: str, *, publisher: bool) -> str:
        return create_token(
            params.api_key,
            params.api_secret,
            identity=identity,
            room=params.room,
            name=identity,
            can_publish=publisher,
            can_subscribe=not publisher,
            ttl=3600,
        )

    publishers = [_SimulatedParticipant(f"Pub {i}", f"{prefix}_pub_{i}") for i in range(params.video_publishers)]
    subscribers = [_SimulatedParticipant(f"Sub {i}", f"{prefix}_sub_{i}") for i in range(params.subscribers)]
    participants.extend(publishers)
    participants.extend(subscribers)

    def publish_job(participant: _SimulatedParticipant) -> Callable[[], Coroutine[Any, Any, str]]:
        return lambda: participant.publish(
            loops, plans, params.simulcast, pacer, _JOIN_TIMEOUT, VIDEO_CODECS[params.video_codec]
        )

    # Publishers first, so each subscriber gets every track in its first offer.
    await asyncio.gather(
        *(
            _join(p, url, token_for(p.identity, publisher=True), gate, subscribe=False, publish=publish_job(p))
            for p in publishers
        )
    )
    working_publishers = [p for p in publishers if p.error is None]
    for p in publishers:
        if p.error is not None:
            log(f"{p.name}: {p.error}")
    await asyncio.gather(
        *(
            _join(
                s,
                url,
                token_for(s.identity, publisher=False),
                gate,
                subscribe=True,
                publish=None,
                single_pc=params.single_pc,
            )
            for s in subscribers
        )
    )
    for s in subscribers:
        if s.error is not None:
            log(f"{s.name}: {s.error}")
    expected = len(working_publishers)
    if not working_publishers:
        log("No publisher could publish: nothing to forward, nothing measured")
        return LoadTestResult(
            params=params,
            tracks=[],
            subscribers=[s.name for s in subscribers],
            expected_tracks=params.video_publishers,
            window_seconds=0.0,
            errors={p.name: p.error for p in participants if p.error is not None},
            server_pid=server_pid,
        )

    # Warm-up: until every connected subscriber receives every working track.
    deadline = time.monotonic() + params.warmup
    while time.monotonic() < deadline:
        if all(s.error is not None or s.tracks_receiving() >= expected for s in subscribers):
            break
        await asyncio.sleep(0.1)
    waiting = [s.name for s in subscribers if s.error is None and s.tracks_receiving() < expected]
    if waiting:
        log(f"Still waiting for media after {params.warmup:g} s: {', '.join(waiting[:10])}; measuring anyway")
    # Late joiners' keyframe requests are still being answered; let them pass.
    await asyncio.sleep(_SETTLE_SECONDS)
    log(f"Finished connecting to room {params.room}, measuring for {params.duration:g} s")

    for sub in subscribers:
        for counter in list(sub.counters.values()):
            counter.latency_max = 0.0
    before = _snapshot(subscribers)
    sent_before = _sent(publishers)
    forwarded_before = {p.track_sid: p.layers[-1].packets_sent for p in publishers if p.layers}
    cpu_before = process_cpu_seconds(server_pid) if server_pid is not None else None
    wait_before = run_queue_wait_seconds(server_pid) if server_pid is not None else None
    client_wait_before = run_queue_wait_seconds(os.getpid())
    client_before = time.process_time()
    window_start = time.monotonic()
    await asyncio.sleep(params.duration)
    after = _snapshot(subscribers)
    sent_after = _sent(publishers)
    # Subscribers get the top layer (the server's default for a simulcast track).
    forwarded = {
        p.track_sid: p.layers[-1].packets_sent - forwarded_before.get(p.track_sid, 0) for p in publishers if p.layers
    }
    maxima = {
        (sub.name, sid): counter.latency_max for sub in subscribers for sid, counter in list(sub.counters.items())
    }
    cpu_after = process_cpu_seconds(server_pid) if server_pid is not None else None
    client_cpu = time.process_time() - client_before
    wait_after = run_queue_wait_seconds(server_pid) if server_pid is not None else None
    client_wait_after = run_queue_wait_seconds(os.getpid())
    window = time.monotonic() - window_start

    tracks: list[TrackResult] = []
    for key, (packets, payload, lost, latency_sum, latency_count) in sorted(after.items()):
        p0, b0, l0, s0, c0 = before.get(key, (0, 0, 0, 0.0, 0))
        samples = latency_count - c0
        tracks.append(
            TrackResult(
                key[0],
                key[1],
                packets - p0,
                payload - b0,
                max(0, lost - l0),
                window,
                expected=forwarded.get(key[1], 0),
                mean_latency_ms=1000.0 * (latency_sum - s0) / samples if samples else None,
                max_latency_ms=1000.0 * maxima.get(key, 0.0) if samples else None,
            )
        )
    errors = {p.name: p.error for p in participants if p.error is not None}
    return LoadTestResult(
        params=params,
        tracks=tracks,
        subscribers=[s.name for s in subscribers],
        # A publisher that failed still counts: its track is missing everywhere.
        expected_tracks=params.video_publishers,
        window_seconds=window,
        errors=errors,
        publisher_packets=sent_after[0] - sent_before[0],
        publisher_frames=sent_after[1] - sent_before[1],
        publisher_keyframes=sent_after[2] - sent_before[2],
        server_pid=server_pid,
        server_cpu_seconds=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        client_cpu_seconds=client_cpu,
        server_wait_seconds=None if wait_before is None or wait_after is None else wait_after - wait_before,
        client_wait_seconds=(
            None if client_wait_before is None or client_wait_after is None else client_wait_after - client_wait_before
        ),
    )


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def _format_bitrate(kbps: float) -> str:
    return f"{kbps / 1000:.2f} Mbps" if kbps >= 1000 else f"{kbps:.0f} kbps"


def _format_loss(packets: int, lost: int) -> str:
    if packets == 0:
        return " - "
    return f"{lost} ({100.0 * lost / (packets + lost):.3g}%)"


def _format_percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _format_latency(mean_ms: float | None, max_ms: float | None) -> str:
    if mean_ms is None or max_ms is None:
        return "-"
    return f"{mean_ms:.1f}/{max_ms:.1f} ms"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
    return "\n".join(lines)


def format_report(result: LoadTestResult, *, per_track: bool = True) -> str:
    """The tables ``kitewire load-test`` prints: per track, per subscriber, totals, server CPU."""
    out: list[str] = []
    if per_track and result.tracks:
        rows = []
        previous = ""
        for track in result.tracks:
            rows.append(
                [
                    track.subscriber if track.subscriber != previous else "",
                    track.track_sid,
                    "video",
                    str(track.packets),
                    _format_bitrate(track.kbps),
                    _format_loss(track.packets, track.lost),
                    _format_percent(track.delivered_percent),
                    _format_latency(track.mean_latency_ms, track.max_latency_ms),
                ]
            )
            previous = track.subscriber
        out.append("Track loading:")
        out.append(
            _table(["Tester", "Track", "Kind", "Pkts.", "Bitrate", "Pkt. Loss", "Delivered", "Latency avg/max"], rows)
        )
        out.append("")
    rows = []
    for name in result.subscribers:
        mine = result.tracks_of(name)
        packets = sum(t.packets for t in mine)
        lost = sum(t.lost for t in mine)
        kbps = sum(t.kbps for t in mine)
        receiving = sum(1 for t in mine if t.packets > 0)
        error = result.errors.get(name, "")
        rows.append(
            [
                name,
                f"{receiving}/{result.expected_tracks}",
                _format_bitrate(kbps),
                _format_loss(packets, lost),
                error if len(error) <= 70 else error[:67] + "...",
            ]
        )
    total_kbps = sum(t.kbps for t in result.tracks)
    receiving_total = sum(1 for t in result.tracks if t.packets > 0)
    average = total_kbps / len(result.subscribers) if result.subscribers else 0.0
    rows.append(
        [
            "Total",
            f"{receiving_total}/{result.expected_tracks * len(result.subscribers)}",
            f"{_format_bitrate(total_kbps)} ({_format_bitrate(average)} avg)",
            _format_loss(result.packets_forwarded, result.packets_lost),
            str(len(result.errors)),
        ]
    )
    out.append("Subscriber summaries:")
    out.append(_table(["Tester", "Tracks", "Bitrate", "Total Pkt. Loss", "Error"], rows))
    out.append("")
    out.append(
        f"Forwarded packets (received by subscribers in {result.window_seconds:.1f} s): {result.packets_forwarded}; "
        f"median track bitrate {_format_bitrate(result.median_kbps)}; loss {result.loss_percent:.3g}%; "
        f"delivered {_format_percent(result.delivered_percent)} of what was sent; "
        f"frame latency {_format_latency(result.mean_latency_ms, result.max_latency_ms)}"
    )
    delivered = result.delivered_percent
    if delivered is not None and delivered < 95.0:
        out.append(
            "Warning: subscribers received clearly less than the publishers sent, without sequence gaps: "
            "the server (or this machine) is falling behind and packets are queueing."
        )
    out.append(
        f"Publishers sent {result.publisher_packets} packets in {result.publisher_frames} frames "
        f"({result.publisher_keyframes} keyframes) in the window"
    )
    publisher_errors = {k: v for k, v in result.errors.items() if k.startswith("Pub")}
    for name, error in publisher_errors.items():
        out.append(f"{name}: {error}")
    if result.cpu_us_per_packet is not None and result.server_cpu_seconds is not None:
        out.append(
            f"Server pid {result.server_pid}: {result.server_cpu_seconds:.2f} s CPU in the window "
            f"({result.server_cpu_percent:.0f}% of a core), "
            f"{result.cpu_us_per_packet:.1f} us CPU per forwarded packet"
        )
    elif result.server_pid is not None:
        out.append(f"Server pid {result.server_pid}: no packets forwarded, CPU per packet undefined")
    if result.window_seconds > 0:
        out.append(
            f"Load-test process: {100.0 * result.client_cpu_seconds / result.window_seconds:.0f}% of a core "
            "(near 100% means the simulated clients, not the server, set the limit)"
        )
        waits = [
            f"{who} {100.0 * wait / result.window_seconds:.0f}%"
            for who, wait in (("server", result.server_wait_seconds), ("load test", result.client_wait_seconds))
            if wait is not None
        ]
        if waits:
            out.append(
                f"Waiting for a CPU (runnable, not running) in the window: {', '.join(waits)} "
                "(high values: the machine is busy, latency and delivery suffer from that)"
            )
    return "\n".join(out)


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kitewire load-test``."""
    parser.add_argument("--url", default="ws://127.0.0.1:7880", help="server URL (loopback only; default %(default)s)")
    parser.add_argument("--api-key", default=DEV_API_KEY, help="API key (default %(default)s)")
    parser.add_argument("--api-secret", default=DEV_API_SECRET, help="API secret (default %(default)s)")
    parser.add_argument("--room", default="load-test", help="room name (default %(default)s)")
    parser.add_argument(
        "--video-publishers", type=int, default=1, help=f"simulated video publishers, 1..{MAX_PUBLISHERS} (default 1)"
    )
    parser.add_argument(
        "--subscribers", type=int, default=1, help=f"simulated subscribers, 0..{MAX_SUBSCRIBERS} (default 1)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help=f"measuring window in seconds, 1..{MAX_DURATION:g} (default 10)"
    )
    parser.add_argument("--resolution", default="720p", choices=list(RESOLUTIONS), help="published size (default 720p)")
    parser.add_argument("--video-codec", default="vp8", choices=list(VIDEO_CODECS), help="video codec (default vp8)")
    parser.add_argument(
        "--simulcast",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="publish livekit's simulcast layers (q/h/f for 720p; default on, as in lk load-test)",
    )
    parser.add_argument(
        "--single-pc",
        action="store_true",
        help="subscribers join like livekit 1.x SDKs (/rtc/v1, one PeerConnection) instead of /rtc with two",
    )
    parser.add_argument("--server-pid", type=int, default=None, help="measure this server process's CPU")
    parser.add_argument(
        "--embedded", action="store_true", help="start 'kitewire serve --dev' in a child process and test it"
    )
    parser.add_argument(
        "--warmup", type=float, default=15.0, help="longest wait for media before measuring (seconds, default 15)"
    )
    parser.add_argument("--no-track-table", action="store_true", help="print only the summaries")


def _params_from_args(args: argparse.Namespace) -> LoadTestParams:
    return LoadTestParams(
        url=args.url,
        api_key=args.api_key,
        api_secret=args.api_secret,
        room=args.room,
        video_publishers=args.video_publishers,
        subscribers=args.subscribers,
        duration=args.duration,
        resolution=args.resolution,
        video_codec=args.video_codec,
        simulcast=args.simulcast,
        single_pc=args.single_pc,
        server_pid=args.server_pid,
        embedded=args.embedded,
        warmup=args.warmup,
    )


async def _run_until_terminated(params: LoadTestParams) -> LoadTestResult:
    # SIGTERM cancels the run like Ctrl-C does (asyncio.run handles SIGINT),
    # so connections and the embedded server are closed either way.
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run_load_test(params, log=lambda line: print(line, flush=True))
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``kitewire load-test``: 0 when every subscriber got every track, else 1 (2 on bad options)."""
    try:
        params = _params_from_args(args)
        params.validate()
    except ValueError as exc:
        print(f"kitewire load-test: {exc}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    try:
        result = asyncio.run(_run_until_terminated(params))
    except asyncio.CancelledError:
        print("kitewire load-test: terminated; every connection was closed", file=sys.stderr)
        return 128 + signal.SIGTERM
    except (RuntimeError, OSError, TimeoutError) as exc:
        print(f"kitewire load-test: {exc}", file=sys.stderr)
        return 1
    print()
    print(format_report(result, per_track=not args.no_track_table))
    return 0 if result.complete else 1
