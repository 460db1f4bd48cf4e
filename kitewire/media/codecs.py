"""VP8, H264, VP9, AV1 and H265 encoders/decoders on PyAV (libvpx, libx264, libvpx-vp9,
SVT-AV1, libx265; ffmpeg's decoders and dav1d).

Both classes are synchronous and meant to run in a worker thread
(``loop.run_in_executor``): PyAV drops the GIL around the codec calls
(``avcodec_send_frame``/``avcodec_send_packet``/``avcodec_receive_*`` sit in
``with cython.nogil`` blocks in av/codec/context.py, and so does the scaler
in av/video/reformatter.py), and ``python -m kitewire.bench.codecs`` shows two encoders
in two threads running in parallel. One instance must not run ``encode`` or
``decode`` in two threads at once; the encoder's setters and
``request_keyframe`` may be called from any thread.

Odd frame sizes: VP8, VP9 and AV1 encode them as they are (the
receiver decodes e.g. 641x479). H264 and H265 with 4:2:0 chroma can only code even
sizes and cannot signal a one-pixel crop, so their encoders code
``width & ~1`` x ``height & ~1`` and scale input frames to that (641x479 ->
640x478); the receiver sees that even size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from fractions import Fraction
from typing import NamedTuple, Protocol, runtime_checkable

import av
import av.error
from av.codec.context import Flags
from av.video.frame import PictureType

from kitewire.media.av1 import Av1Packetizer, av1_bitstream_is_keyframe
from kitewire.media.h264 import H264Packetizer
from kitewire.media.h265 import H265Packetizer
from kitewire.media.packet_trailer import FrameMetadata, attach_metadata
from kitewire.media.packetizer import DEFAULT_MAX_PAYLOAD_SIZE, Packetizer
from kitewire.media.vp8 import Vp8Packetizer
from kitewire.media.vp9 import Vp9Packetizer
from kitewire.media.vp9_descriptor import vp9_bitstream_is_keyframe

logger = logging.getLogger(__name__)

SUPPORTED_CODECS = ("VP8", "H264", "VP9", "AV1", "H265")
"""Codecs kitewire encodes and decodes."""
_DECODER_NAMES = {"VP8": "vp8", "H264": "h264", "VP9": "vp9", "AV1": "libdav1d", "H265": "hevc"}

H264_PROFILE_LEVEL_ID = "42e01f"
"""Constrained baseline, level 3.1: what livekit/libwebrtc negotiate by default."""

# Bitrate changes smaller than this fraction are ignored: applying one means
# reopening the encoder (see VideoEncoder.set_bitrate), which costs a keyframe.
_BITRATE_CHANGE_THRESHOLD = 0.15

_MIN_BITRATE = 10_000
_MAX_DIMENSION = 8192


@runtime_checkable
class SupportsToAv(Protocol):
    """Anything convertible to an ``av.VideoFrame`` (e.g. ``kitewire.frames.VideoFrame``)."""

    def to_av(self) -> av.VideoFrame: ...


def normalize_codec(codec: str) -> str:
    """ "VP8"/"H264"/"VP9"/"AV1"/"H265" from "vp8", "video/VP8", "h264", "video/H265", ...
    ("HEVC" is H265).

    Raises ``ValueError`` for anything else.
    """
    if not isinstance(codec, str):
        raise ValueError(f"codec: expected one of {', '.join(SUPPORTED_CODECS)}, got {codec!r}")
    name = codec.strip().upper()
    name = name.removeprefix("VIDEO/")
    if name == "HEVC":
        name = "H265"
    if name not in SUPPORTED_CODECS:
        raise ValueError(
            f"codec: expected one of {', '.join(SUPPORTED_CODECS)} (optionally 'video/...'), got {codec!r}"
        )
    return name


class EncodedFrame(list[bytes]):
    """RTP payloads of one encoded frame (in send order) plus frame facts.

    It is a ``list[bytes]``; the last payload is the one to send with the marker bit.
    """

    keyframe: bool
    """True when the frame is a keyframe (decodable on its own)."""
    width: int
    """Width of the encoded picture."""
    height: int
    """Height of the encoded picture."""

    def __init__(self, payloads: list[bytes], *, keyframe: bool, width: int, height: int) -> None:
        super().__init__(payloads)
        self.keyframe = keyframe
        self.width = width
        self.height = height


def _check_size(width: int, height: int) -> None:
    if not isinstance(width, int) or not isinstance(height, int) or isinstance(width, bool):
        raise ValueError(f"frame size: expected integers, got {width!r}x{height!r}")
    if not (2 <= width <= _MAX_DIMENSION and 2 <= height <= _MAX_DIMENSION):
        raise ValueError(f"frame size: expected 2..{_MAX_DIMENSION} pixels per side, got {width}x{height}")


def _h264_level(width: int, height: int) -> str:
    pixels = width * height
    if pixels <= 1280 * 720:
        return "3.1"
    if pixels <= 1920 * 1088:
        return "4.0"
    return "5.1"


class _EncoderSettings(NamedTuple):
    size: tuple[int, int]
    bitrate: int
    framerate: Fraction


class VideoEncoder:
    """Real-time encoder producing packetized RTP payloads.

    ``codec`` is "VP8", "H264", "VP9", "AV1" or "H265"; ``bitrate`` is in bits per second. The
    encoder codes at its configured size (H264, H265: rounded down to even) and
    scales input frames of any other size to it; ``set_resolution`` changes
    the size. Settings follow libwebrtc's real-time choices: VP8 with
    realtime deadline, cpu-used 10, no lag, error resilient, CBR; H264
    constrained baseline with x264 ultrafast/zerolatency, no B-frames and
    SPS/PPS in front of every IDR; VP9 (libvpx-vp9) like VP8 with cyclic-refresh
    AQ; AV1 with SVT-AV1's fastest low-delay preset, CBR; H265 with x265
    ultrafast/zerolatency, no B-frames, VBV-capped and VPS/SPS/PPS in front of every
    IDR (so a late joiner decodes from the next keyframe). Keyframes come only on
    demand (or after a reconfiguration).
    """

    def __init__(
        self,
        codec: str = "VP8",
        width: int = 640,
        height: int = 480,
        bitrate: int = 1_000_000,
        framerate: float = 30.0,
        *,
        max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
        threads: int = 1,
    ) -> None:
        self._codec = normalize_codec(codec)
        _check_size(width, height)
        if not isinstance(bitrate, int) or bitrate < _MIN_BITRATE:
            raise ValueError(f"bitrate: expected an int >= {_MIN_BITRATE} bps, got {bitrate!r}")
        if not (isinstance(framerate, (int, float)) and 1 <= framerate <= 240):
            raise ValueError(f"framerate: expected 1..240 frames per second, got {framerate!r}")
        if not isinstance(threads, int) or not 1 <= threads <= 16:
            raise ValueError(f"threads: expected 1..16, got {threads!r}")
        # Settings are written by the setters (possibly on the event loop while
        # encode runs in a worker) one attribute at a time; encode snapshots
        # them and reopens the codec when they differ from what it opened with.
        self._size = (width, height)
        self._bitrate = bitrate
        self._framerate = Fraction(framerate).limit_denominator(1001)
        self._opened_with: _EncoderSettings | None = None
        self._threads = threads
        self._packetizer: Packetizer = _packetizer_for(self._codec, max_payload_size)
        self._context: av.VideoCodecContext | None = None
        self._pts = -1  # 90 kHz ticks of the last encoded frame
        self._first_capture_time: float | None = None
        self._keyframe_requested = False
        # H264 frame-rate tracking (see _track_framerate).
        self._measured_interval: float | None = None
        self._previous_pts: int | None = None
        self._opened_at_pts = 0
        #: (codec, encoded frame) -> the frame to packetize, or None to drop it (E2EE)
        self.frame_transform: Callable[[str, bytes], bytes | None] | None = None

    @property
    def codec(self) -> str:
        """ "VP8", "H264", "VP9", "AV1" or "H265"."""
        return self._codec

    @property
    def bitrate(self) -> int:
        """Current target bitrate in bits per second."""
        return self._bitrate

    @property
    def width(self) -> int:
        """Width of the encoded pictures (H264, H265: even)."""
        return self._coded_size(self._size)[0]

    @property
    def height(self) -> int:
        """Height of the encoded pictures (H264, H265: even)."""
        return self._coded_size(self._size)[1]

    def _coded_size(self, size: tuple[int, int]) -> tuple[int, int]:
        if self._codec in ("H264", "H265"):
            return size[0] & ~1, size[1] & ~1
        return size

    def _current_settings(self) -> _EncoderSettings:
        return _EncoderSettings(self._coded_size(self._size), self._bitrate, self._framerate)

    @property
    def packetizer(self) -> Packetizer:
        """The packetizer that turns encoder output into RTP payloads."""
        return self._packetizer

    def set_bitrate(self, bitrate: int) -> None:
        """Change the target bitrate (bps); applies from the next frame.

        PyAV cannot retune libvpx's rate control on an open encoder, so a
        change of more than 15% reopens the encoder (the next frame is then a
        keyframe); smaller changes are ignored. Callers driven by congestion
        control should therefore change it in steps, not every packet. Safe
        to call from another thread than the one encoding.
        """
        if not isinstance(bitrate, int) or bitrate < _MIN_BITRATE:
            raise ValueError(f"bitrate: expected an int >= {_MIN_BITRATE} bps, got {bitrate!r}")
        if abs(bitrate - self._bitrate) > self._bitrate * _BITRATE_CHANGE_THRESHOLD:
            self._bitrate = bitrate

    def set_resolution(self, width: int, height: int) -> None:
        """Change the encoded size; the next frame is a keyframe. Safe to call
        from another thread than the one encoding."""
        _check_size(width, height)
        self._size = (width, height)

    def request_keyframe(self) -> None:
        """Make the next encoded frame a keyframe. Safe to call from another
        thread than the one encoding."""
        self._keyframe_requested = True

    def _open(self, settings: _EncoderSettings) -> av.VideoCodecContext:
        (width, height), bitrate, framerate = settings
        if self._codec in ("VP9", "AV1", "H265"):
            context = _open_svc_codec_context(self._codec, bitrate, self._threads)
        elif self._codec == "VP8":
            context = av.CodecContext.create("libvpx", "w")
            options = {
                "deadline": "realtime",
                "cpu-used": "10",
                "lag-in-frames": "0",
                "error-resilient": "default",
                "auto-alt-ref": "0",
                # CBR as libwebrtc uses it: ffmpeg picks VPX_CBR when min = max = target.
                "minrate": str(bitrate),
                "maxrate": str(bitrate),
                "bufsize": str(bitrate),
                "undershoot-pct": "100",
                "overshoot-pct": "15",
                "max-intra-rate": "300",
                "qmin": "2",
                "qmax": "56",
                "g": "100000",
                "keyint_min": "100000",
            }
        else:
            context = av.CodecContext.create("libx264", "w")
            options = {
                "preset": "ultrafast",
                "tune": "zerolatency",
                "profile": "baseline",
                "level": _h264_level(width, height),
                "forced-idr": "1",
                "bf": "0",
                "g": "100000",
                "maxrate": str(bitrate),
                "bufsize": str(bitrate),
                # No scene-cut keyframes: keyframes are sent on request only.
                "x264-params": "scenecut=0:aud=0:repeat-headers=1",
            }
        context.width = width
        context.height = height
        context.pix_fmt = "yuv420p"
        context.bit_rate = bitrate
        context.framerate = framerate
        # 90 kHz like RTP: libvpx's rate control follows real frame intervals
        # when the timestamps carry them.
        context.time_base = Fraction(1, 90_000)
        context.thread_count = self._threads
        if self._codec not in ("VP9", "AV1", "H265"):
            context.options = options
        context.open()
        return context

    def encode(
        self,
        frame: av.VideoFrame | SupportsToAv,
        *,
        keyframe: bool = False,
        capture_time: float | None = None,
        metadata: FrameMetadata | None = None,
    ) -> EncodedFrame:
        """Encode one frame and return its RTP payloads (empty list if the codec
        produced nothing for it, e.g. a rate-control frame drop).

        ``keyframe=True`` forces a keyframe. ``capture_time`` (seconds, any
        monotonic clock) lets rate control follow the real frame rate; without
        it frames are assumed to come at ``framerate``. Frames of another size
        or pixel format are scaled/converted to the encoder's yuv420p size.
        The frame passed in may get its ``pts`` and ``pict_type`` overwritten,
        so one ``av.VideoFrame`` must not go to two encoders running at the
        same time in different threads (one after the other is fine).
        ``metadata`` travels in the encoded frame as LiveKit's SDKs carry it (the packet
        trailer, see :mod:`kitewire.media.packet_trailer`).
        """
        if not isinstance(frame, av.VideoFrame):
            if not isinstance(frame, SupportsToAv):
                raise ValueError(f"frame: expected av.VideoFrame or kitewire VideoFrame, got {type(frame).__name__}")
            frame = frame.to_av()
        pts = self._next_pts(capture_time)
        if self._codec in ("H264", "H265"):
            self._track_framerate(pts)
        settings = self._current_settings()
        context = self._context
        if context is None or settings != self._opened_with:
            context = self._context = self._open(settings)
            self._opened_with = settings
            self._opened_at_pts = pts
            keyframe = True  # a fresh encoder starts with one anyway
        width, height = settings.size
        if frame.width != width or frame.height != height or frame.format.name != "yuv420p":
            frame = frame.reformat(width=width, height=height, format="yuv420p")
        force = keyframe or self._keyframe_requested
        # Cleared before encoding so a request arriving from another thread
        # meanwhile is kept for the next frame instead of being swallowed.
        self._keyframe_requested = False
        frame.pict_type = PictureType.I if force else PictureType.NONE
        frame.pts = pts
        packets = context.encode(frame)
        data = b"".join(bytes(packet) for packet in packets)
        is_key = bool(data) and any(packet.is_keyframe for packet in packets)
        if force and not is_key:
            self._keyframe_requested = True  # the codec skipped it; try again
        if not data:
            return EncodedFrame([], keyframe=False, width=width, height=height)
        if isinstance(self._packetizer, Vp9Packetizer):
            self._packetizer.width, self._packetizer.height = width, height
        if self.frame_transform is not None:
            transformed = self.frame_transform(self._codec, data)
            if transformed is None:
                self._keyframe_requested = self._keyframe_requested or is_key
                return EncodedFrame([], keyframe=False, width=width, height=height)
            data = transformed
        # the packet trailer goes outside the encryption, as the official SDK puts it
        try:
            payloads = self._packetizer.packetize(attach_metadata(self._codec, data, metadata))
        except ValueError:
            # a refused frame (H265: a trailer whose bytes form a start code) must not take
            # the keyframe a receiver waits for with it
            self._keyframe_requested = self._keyframe_requested or is_key
            raise
        return EncodedFrame(payloads, keyframe=is_key, width=width, height=height)

    def _next_pts(self, capture_time: float | None) -> int:
        step = round(90_000 / self._framerate)
        if capture_time is None:
            pts = self._pts + step
        else:
            if self._first_capture_time is None:
                self._first_capture_time = capture_time - (self._pts + step) / 90_000
            pts = round((capture_time - self._first_capture_time) * 90_000)
        # Encoders reject timestamps that do not increase.
        pts = max(pts, self._pts + 1)
        self._pts = pts
        return pts

    def _track_framerate(self, pts: int) -> None:
        """x264 and x265 in zero-latency mode budget bits per frame from the configured
        frame rate, whatever the timestamps say; when the real rate stays far
        from it, reopen the encoder with the measured rate."""
        previous = self._previous_pts
        self._previous_pts = pts
        if previous is None:
            return
        interval = (pts - previous) / 90_000
        if self._measured_interval is None:
            self._measured_interval = interval
        else:
            self._measured_interval += (interval - self._measured_interval) * 0.1
        if self._context is None or pts - self._opened_at_pts < 3 * 90_000:
            return
        measured = 1 / max(self._measured_interval, 1 / 240)
        configured = float(self._framerate)
        if not 0.67 < measured / configured < 1.5:
            # Takes effect by reopening the encoder on this frame.
            self._framerate = Fraction(min(240.0, max(1.0, measured))).limit_denominator(1001)

    @property
    def framerate(self) -> float:
        """Frame rate the encoder currently budgets for (H264, H265 follow the measured rate)."""
        return float(self._framerate)

    def close(self) -> None:
        """Release the codec."""
        context, self._context = self._context, None
        if context is not None and self._codec == "AV1":
            # SVT-AV1 complains on stderr when freed without an end of stream
            try:
                context.encode(None)
            except (av.error.FFmpegError, ValueError):
                pass


def _packetizer_for(codec: str, max_payload_size: int) -> Packetizer:
    if codec == "VP8":
        return Vp8Packetizer(max_payload_size)
    if codec == "VP9":
        return Vp9Packetizer(max_payload_size)
    if codec == "AV1":
        return Av1Packetizer(max_payload_size)
    if codec == "H265":
        return H265Packetizer(max_payload_size, drop_sei=True)
    return H264Packetizer(max_payload_size, drop_sei=True)


def _open_svc_codec_context(codec: str, bitrate: int, threads: int) -> av.VideoCodecContext:
    """A real-time VP9 (libvpx-vp9), AV1 (SVT-AV1) or H265 (libx265) encoder context,
    options set.

    All code one spatial and one temporal layer: libvpx's SVC and SVT-AV1's layers
    are not reachable through ffmpeg's encoders, so kitewire publishes these codecs
    as "L1T1" whatever scalability mode is asked (a receiver decodes it the same).
    """
    if codec == "H265":
        context = av.CodecContext.create("libx265", "w")
        context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            # a keyframe asked for (pict_type I) is an IDR, not an open-GOP CRA
            "forced-idr": "1",
            "x265-params": ":".join(
                (
                    "bframes=0",
                    "keyint=-1",  # no periodic keyframes: on request only
                    "scenecut=0",
                    "repeat-headers=1",  # VPS/SPS/PPS with every IDR, for late joiners
                    "open-gop=0",
                    "info=0",  # no banner SEI
                    "aud=0",
                    "frame-threads=1",  # more frame threads delay the output
                    f"pools={threads}",  # x265's own pool (it ignores thread_count): as many as asked
                    f"vbv-maxrate={max(1, bitrate // 1000)}",
                    f"vbv-bufsize={max(1, bitrate // 1000)}",
                    "log-level=error",
                )
            ),
        }
        return context
    if codec == "VP9":
        context = av.CodecContext.create("libvpx-vp9", "w")
        context.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "lag-in-frames": "0",
            "error-resilient": "1",
            "auto-alt-ref": "0",
            "row-mt": "1",
            "aq-mode": "3",  # cyclic refresh, as libwebrtc runs VP9
            "minrate": str(bitrate),
            "maxrate": str(bitrate),
            "bufsize": str(bitrate),
            "undershoot-pct": "50",
            "overshoot-pct": "50",
            "qmin": "2",
            "qmax": "56",
            "g": "100000",
            "keyint_min": "100000",
        }
        return context
    # SVT-AV1 writes its banner to stderr at every open, and an "error" whenever an
    # encoder reopened for a new bitrate or size is freed mid-stream: fatal only
    os.environ.setdefault("SVT_LOG", "0")
    context = av.CodecContext.create("libsvtav1", "w")
    context.options = {
        "preset": "11",  # the fastest real-time preset
        # low delay (no reordering, one frame out per frame in), CBR
        "svtav1-params": "pred-struct=1:rc=2:lp=1",
        "g": "100000",
    }
    return context


def _vp8_bitstream_is_keyframe(data: bytes) -> bool:
    # Frame tag: lowest bit 0 means key frame; key frames carry the 9d 01 2a start code.
    return len(data) >= 10 and not data[0] & 0x01 and data[3:6] == b"\x9d\x01\x2a"


def _h264_bitstream_is_keyframe(data: bytes) -> bool:
    position = data.find(b"\x00\x00\x01")
    while 0 <= position < len(data) - 3:
        if data[position + 3] & 0x1F == 5:
            return True
        position = data.find(b"\x00\x00\x01", position + 3)
    return False


def _h265_bitstream_is_keyframe(data: bytes) -> bool:
    # IRAP pictures (BLA, IDR, CRA: NAL types 16-21) or a VPS/SPS in front of one
    position = data.find(b"\x00\x00\x01")
    while 0 <= position < len(data) - 3:
        nal_type = (data[position + 3] >> 1) & 0x3F
        if 16 <= nal_type <= 21:
            return True
        position = data.find(b"\x00\x00\x01", position + 3)
    return False


_BITSTREAM_IS_KEYFRAME = {
    "VP8": _vp8_bitstream_is_keyframe,
    "H264": _h264_bitstream_is_keyframe,
    "VP9": vp9_bitstream_is_keyframe,
    "AV1": av1_bitstream_is_keyframe,
    "H265": _h265_bitstream_is_keyframe,
}


class VideoDecoder:
    """Decoder for complete encoded frames (depacketized bytes; Annex-B for H264).

    Corrupt or undecodable input never raises: ``decode`` returns ``[]`` and
    ``needs_keyframe`` becomes True; delta frames are then skipped until the
    next keyframe arrives.
    """

    def __init__(self, codec: str = "VP8") -> None:
        self._codec = normalize_codec(codec)
        self._context = self._open()
        self._needs_keyframe = True
        self.errors = 0
        """How many frames failed to decode so far."""

    def _open(self) -> av.VideoCodecContext:
        context = av.CodecContext.create(_DECODER_NAMES[self._codec], "r")
        assert isinstance(context, av.VideoCodecContext)
        # Frame threading would hold frames back; one thread decodes with no delay.
        context.thread_count = 1
        context.flags |= Flags.low_delay
        context.open()
        return context

    @property
    def codec(self) -> str:
        """ "VP8", "H264", "VP9", "AV1" or "H265"."""
        return self._codec

    @property
    def needs_keyframe(self) -> bool:
        """True until a keyframe has been decoded after start or an error."""
        return self._needs_keyframe

    def decode(self, encoded_frame: bytes, *, keyframe: bool | None = None) -> list[av.VideoFrame]:
        """Decode one complete frame; returns yuv420p frames (usually one).

        ``keyframe`` tells whether the frame is a keyframe; None detects it
        from the bitstream.
        """
        if not isinstance(encoded_frame, (bytes, bytearray, memoryview)):
            raise ValueError(f"encoded_frame: expected bytes, got {type(encoded_frame).__name__}")
        data = bytes(encoded_frame)
        if not data:
            return []
        if keyframe is None:
            keyframe = _BITSTREAM_IS_KEYFRAME[self._codec](data)
        if self._needs_keyframe and not keyframe:
            return []
        try:
            frames = self._context.decode(av.Packet(data))
        except (av.error.FFmpegError, ValueError) as error:
            self._on_error(error)
            return []
        if keyframe and frames:
            self._needs_keyframe = False
        elif keyframe and not frames:
            # A keyframe that yields no picture did not get the decoder going.
            self._on_error(None)
            return []
        if len(frames) > 1 and self._codec == "VP9":
            # a picture's spatial layers (one superframe): only the top layer is shown
            frames = frames[-1:]
        out: list[av.VideoFrame] = []
        for frame in frames:
            if frame.format.name != "yuv420p":
                frame = frame.reformat(format="yuv420p")
            out.append(frame)
        return out

    def _on_error(self, error: Exception | None) -> None:
        self.errors += 1
        self._needs_keyframe = True
        logger.debug("%s decode failed: %s", self._codec, error)
        # A decoder that choked may hold broken references; start clean.
        self._context = self._open()

    def close(self) -> None:
        """Release the codec."""
        self._needs_keyframe = True
