"""VP8 and H264 encoders/decoders on PyAV (libvpx, libx264, ffmpeg decoders).

Both classes are synchronous and meant to run in a worker thread
(``loop.run_in_executor``); PyAV releases the GIL while the codec works.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import av

SUPPORTED_CODECS = ("VP8", "H264")

H264_PROFILE_LEVEL_ID = "42e01f"
"""Constrained baseline, level 3.1: what livekit/libwebrtc negotiate by default."""


@runtime_checkable
class SupportsToAv(Protocol):
    """Anything convertible to an ``av.VideoFrame`` (e.g. ``kitewire.frames.VideoFrame``)."""

    def to_av(self) -> av.VideoFrame: ...


def normalize_codec(codec: str) -> str:
    """"VP8"/"H264" from "vp8", "video/VP8", "h264", "video/H264", ...

    Raises ``ValueError`` for anything else.
    """
    raise NotImplementedError


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


class VideoEncoder:
    """Real-time encoder producing packetized RTP payloads.

    ``codec`` is "VP8" or "H264"; ``bitrate`` is in bits per second. Frames of a
    different size than configured reopen the encoder (the next frame is a
    keyframe). Odd sizes: see ``encode``.
    """

    def __init__(
        self,
        codec: str = "VP8",
        width: int = 640,
        height: int = 480,
        bitrate: int = 1_000_000,
        framerate: float = 30.0,
        *,
        max_payload_size: int = 1200,
    ) -> None:
        raise NotImplementedError

    @property
    def codec(self) -> str:
        """"VP8" or "H264"."""
        raise NotImplementedError

    @property
    def bitrate(self) -> int:
        """Current target bitrate in bits per second."""
        raise NotImplementedError

    def set_bitrate(self, bitrate: int) -> None:
        """Change the target bitrate (bps); applies from the next frame."""
        raise NotImplementedError

    def request_keyframe(self) -> None:
        """Make the next encoded frame a keyframe."""
        raise NotImplementedError

    def encode(self, frame: av.VideoFrame | SupportsToAv, *, keyframe: bool = False) -> EncodedFrame:
        """Encode one frame and return its RTP payloads (empty list if the codec
        produced nothing for it).

        ``keyframe=True`` forces a keyframe. Frames are converted to yuv420p if
        needed.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the codec."""
        raise NotImplementedError


class VideoDecoder:
    """Decoder for complete encoded frames (depacketized bytes; Annex-B for H264).

    Corrupt or undecodable input never raises: ``decode`` returns ``[]`` and
    ``needs_keyframe`` becomes True; delta frames are then skipped until the
    next keyframe arrives.
    """

    def __init__(self, codec: str = "VP8") -> None:
        raise NotImplementedError

    @property
    def codec(self) -> str:
        """"VP8" or "H264"."""
        raise NotImplementedError

    @property
    def needs_keyframe(self) -> bool:
        """True until a keyframe has been decoded after start or an error."""
        raise NotImplementedError

    def decode(self, encoded_frame: bytes, *, keyframe: bool | None = None) -> list[av.VideoFrame]:
        """Decode one complete frame; returns yuv420p frames (usually one).

        ``keyframe`` tells whether the frame is a keyframe; None detects it
        from the bitstream.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the codec."""
        raise NotImplementedError
