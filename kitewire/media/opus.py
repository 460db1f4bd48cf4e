"""Opus through PyAV's libopus: 48 kHz, mono or stereo, 20 ms frames, in-band FEC and DTX.

The RTP payload format (RFC 7587) is one Opus packet per RTP payload on a 48 kHz
clock, so packetization is the identity; :func:`opus_frame_samples` reads a
packet's duration from its TOC byte (RFC 6716 section 3.1) for the receiver's
timestamp bookkeeping. Encoding and decoding release the GIL (FFmpeg), and are
meant to be called from a worker thread, one call at a time per codec object.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os
import threading

import av
import numpy as np

__all__ = [
    "OPUS_CHANNELS",
    "OPUS_FRAME_MS",
    "OPUS_FRAME_SAMPLES",
    "OPUS_SAMPLE_RATE",
    "OpusConcealingDecoder",
    "OpusDecoder",
    "OpusEncoder",
    "opus_frame_samples",
]

OPUS_SAMPLE_RATE = 48_000
OPUS_FRAME_MS = 20
#: samples per channel in one 20 ms frame at 48 kHz
OPUS_FRAME_SAMPLES = OPUS_SAMPLE_RATE * OPUS_FRAME_MS // 1000
#: Channels the RTP format always announces ("opus/48000/2"); the stream may be mono.
OPUS_CHANNELS = 2
#: With DTX: silent frames still sent before suppression starts, and the interval of keep-alive frames.
DTX_HANGOVER_FRAMES = 10
DTX_KEEPALIVE_FRAMES = 20

_LAYOUTS = {1: "mono", 2: "stereo"}
# frame sizes in 48 kHz samples for each TOC configuration group (RFC 6716 table 2)
_SILK_SIZES = (480, 960, 1920, 2880)
_CELT_SIZES = (120, 240, 480, 960)


def _check_channels(num_channels: int) -> int:
    if num_channels not in _LAYOUTS:
        raise ValueError(f"expected 1 or 2 Opus channels, got {num_channels!r}")
    return num_channels


def opus_frame_samples(packet: bytes) -> int:
    """Samples per channel (at 48 kHz) in one Opus packet, from its TOC byte and frame count.

    Raises ValueError for an empty or malformed packet.
    """
    if not packet:
        raise ValueError("expected an Opus packet of at least 1 byte, got 0")
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        size = _SILK_SIZES[config & 3]
    elif config < 16:
        size = 480 if config & 1 == 0 else 960
    else:
        size = _CELT_SIZES[config & 3]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            raise ValueError("expected a frame count byte after an Opus code-3 TOC, got none")
        frames = packet[1] & 0x3F
        if frames == 0:
            raise ValueError("expected at least one frame in an Opus code-3 packet, got 0")
    total = size * frames
    if total > 5760:
        raise ValueError(f"expected at most 120 ms in one Opus packet, got {total} samples")
    return total


class OpusEncoder:
    """Encodes 20 ms frames of int16 interleaved PCM at 48 kHz into Opus packets.

    ``fec`` turns on in-band forward error correction tuned for ``expected_loss``
    percent. ``dtx`` suppresses silence: after :data:`DTX_HANGOVER_FRAMES` frames of
    digital silence only every :data:`DTX_KEEPALIVE_FRAMES`-th frame is sent (the
    receiver plays the jump in RTP time as silence). libopus's own DTX is not
    reachable through FFmpeg's wrapper in this build, so the suppression is ours.
    """

    def __init__(
        self,
        num_channels: int = 1,
        *,
        bitrate: int = 32_000,
        fec: bool = True,
        dtx: bool = False,
        expected_loss: int = 10,
        application: str = "audio",
    ) -> None:
        self.num_channels = _check_channels(num_channels)
        if isinstance(bitrate, bool) or not isinstance(bitrate, int) or not 6_000 <= bitrate <= 510_000:
            raise ValueError(f"expected an Opus bitrate between 6000 and 510000 bps, got {bitrate!r}")
        if application not in ("voip", "audio", "lowdelay"):
            raise ValueError(f"expected application 'voip', 'audio' or 'lowdelay', got {application!r}")
        context = av.CodecContext.create("libopus", "w")
        assert isinstance(context, av.AudioCodecContext)
        context.sample_rate = OPUS_SAMPLE_RATE
        context.layout = _LAYOUTS[num_channels]
        context.format = "s16"
        context.bit_rate = bitrate
        context.options = {
            "application": application,
            "frame_duration": str(OPUS_FRAME_MS),
            "fec": "1" if fec else "0",
            "packet_loss": str(max(0, min(100, int(expected_loss)))),
            "dtx": "1" if dtx else "0",
            "vbr": "on",
        }
        context.open()
        self._context = context
        self._pts = 0
        self._lock = threading.Lock()
        self._dtx = dtx
        self._silent_frames = 0
        #: frames not sent because of DTX
        self.frames_suppressed = 0

    def encode(self, pcm: bytes | bytearray | memoryview) -> list[bytes]:
        """Encode one 20 ms frame (``OPUS_FRAME_SAMPLES`` x channels int16 samples); returns the packets out.

        With DTX an encoder may return a 1-2 byte packet or none for silence.
        """
        expected = OPUS_FRAME_SAMPLES * self.num_channels * 2
        if len(pcm) != expected:
            raise ValueError(
                f"expected one 20 ms frame of {expected} bytes ({self.num_channels} channels at 48 kHz), got {len(pcm)}"
            )
        array = np.frombuffer(pcm, dtype=np.int16).reshape(1, OPUS_FRAME_SAMPLES * self.num_channels)
        frame = av.AudioFrame.from_ndarray(array, format="s16", layout=_LAYOUTS[self.num_channels])
        frame.sample_rate = OPUS_SAMPLE_RATE
        with self._lock:
            frame.pts = self._pts
            self._pts += OPUS_FRAME_SAMPLES
            packets = [bytes(packet) for packet in self._context.encode(frame) if packet.size > 0]
            if self._dtx:
                silent = not array.any()
                self._silent_frames = self._silent_frames + 1 if silent else 0
                beyond = self._silent_frames - DTX_HANGOVER_FRAMES
                if beyond > 0 and beyond % DTX_KEEPALIVE_FRAMES:
                    self.frames_suppressed += 1
                    return []
            return packets


class OpusDecoder:
    """Decodes Opus packets into int16 interleaved PCM at 48 kHz with ``num_channels`` channels
    (a mono stream decodes to both channels of a stereo decoder and vice versa)."""

    def __init__(self, num_channels: int = OPUS_CHANNELS) -> None:
        self.num_channels = _check_channels(num_channels)
        self._context = self._open()
        self._lock = threading.Lock()
        self.errors = 0

    def _open(self) -> av.AudioCodecContext:
        context = av.CodecContext.create("libopus", "r")
        assert isinstance(context, av.AudioCodecContext)
        context.sample_rate = OPUS_SAMPLE_RATE
        context.layout = _LAYOUTS[self.num_channels]
        context.format = "s16"
        context.open()
        return context

    def decode(self, packet: bytes) -> bytes:
        """PCM for one packet (empty bytes if the packet was undecodable: counted in ``errors``)."""
        if not packet:
            raise ValueError("expected an Opus packet of at least 1 byte, got 0")
        with self._lock:
            try:
                frames = self._context.decode(av.Packet(packet))
            except av.error.FFmpegError:
                self.errors += 1
                # a decoder that failed may be left in an odd state: start afresh
                self._context = self._open()
                return b""
        out = bytearray()
        for frame in frames:
            array = frame.to_ndarray()
            out += array.tobytes()
        return bytes(out)


# -- the decoder's own loss concealment -------------------------------------------------
#
# FFmpeg's libopus wrapper decodes packets but has no way to ask libopus for packet-loss
# concealment or for the in-band FEC copy of a lost frame. PyAV's wheel ships libopus
# itself, so the receive side calls that same library directly (ctypes releases the GIL).

_PLC_STEP = OPUS_SAMPLE_RATE // 400  # libopus conceals in multiples of 2.5 ms


@functools.cache
def _libopus() -> ctypes.CDLL | None:
    candidates = glob.glob(os.path.join(os.path.dirname(av.__file__), "..", "av.libs", "libopus*"))
    found = ctypes.util.find_library("opus")
    for path in [*candidates, *([found] if found else [])]:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_decode.restype = ctypes.c_int
        lib.opus_decode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int32,
            ctypes.POINTER(ctypes.c_int16),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.opus_decoder_destroy.restype = None
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        return lib
    return None


class OpusConcealingDecoder:
    """libopus's decoder with its packet-loss concealment (PLC) and in-band FEC recovery.

    Output is int16 interleaved PCM at 48 kHz with ``num_channels`` channels, like
    :class:`OpusDecoder`'s. :meth:`available` says whether libopus could be loaded.
    """

    def __init__(self, num_channels: int = OPUS_CHANNELS) -> None:
        lib = _libopus()
        if lib is None:
            raise RuntimeError("libopus is not loadable (neither PyAV's copy nor a system one)")
        self.num_channels = _check_channels(num_channels)
        self._lib = lib
        error = ctypes.c_int()
        self._state = lib.opus_decoder_create(OPUS_SAMPLE_RATE, num_channels, ctypes.byref(error))
        if not self._state or error.value != 0:
            raise RuntimeError(f"opus_decoder_create failed with error {error.value}")
        self._lock = threading.Lock()
        # the longest an Opus packet lasts: 120 ms
        self._buffer = (ctypes.c_int16 * (5760 * num_channels))()
        self.errors = 0

    @staticmethod
    def available() -> bool:
        """Whether libopus can be called here."""
        return _libopus() is not None

    def _run(self, data: bytes | None, frame_size: int, fec: bool) -> bytes:
        with self._lock:
            count = self._lib.opus_decode(
                self._state, data, len(data) if data else 0, self._buffer, frame_size, 1 if fec else 0
            )
            if count < 0:
                self.errors += 1
                return b""
            return bytes(memoryview(self._buffer).cast("B")[: count * self.num_channels * 2])

    def decode(self, packet: bytes) -> bytes:
        """PCM for one packet (empty bytes if libopus refused it: counted in ``errors``)."""
        if not packet:
            raise ValueError("expected an Opus packet of at least 1 byte, got 0")
        return self._run(packet, 5760, False)

    def conceal(self, samples: int) -> bytes:
        """``samples`` per channel made up by libopus's PLC (whole 2.5 ms steps; the rest silence)."""
        steps = samples - samples % _PLC_STEP
        out = self._run(None, steps, False) if steps else b""
        return out + bytes((samples - len(out) // (2 * self.num_channels)) * 2 * self.num_channels)

    def recover(self, next_packet: bytes, samples: int) -> bytes:
        """The ``samples`` just before ``next_packet`` from its in-band FEC (PLC when it has none)."""
        steps = samples - samples % _PLC_STEP
        if not next_packet or not steps:
            return self.conceal(samples)
        out = self._run(next_packet, steps, True)
        if not out:
            return self.conceal(samples)
        return out + bytes((samples - len(out) // (2 * self.num_channels)) * 2 * self.num_channels)

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.opus_decoder_destroy(state)
