"""Load-test parameters, limits and results."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import statistics
from urllib.parse import urlsplit

from kitewire.signal.token import DEV_API_KEY, DEV_API_SECRET

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
# Seconds between the NTP (1900) and Unix (1970) epochs: abs-capture-time is NTP.
NTP_UNIX_OFFSET = 2_208_988_800
Q32_SCALE = float(1 << 32)
_LOOPBACK_NAMES = {"localhost"}


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
