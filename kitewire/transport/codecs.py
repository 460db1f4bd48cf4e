"""Codec and header-extension parameter tables: what the transport offers and accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .rtp import URI_AUDIO_LEVEL, URI_REPAIRED_RID, URI_RID, URI_VIDEO_ORIENTATION

__all__ = [
    "AUDIO_ONLY_EXTENSIONS",
    "AUDIO_RTCP_FEEDBACK",
    "DEFAULT_CODECS",
    "REJECTED_CODECS",
    "SUPPORTED_FEEDBACK",
    "VIDEO_ONLY_EXTENSIONS",
    "VIDEO_RTCP_FEEDBACK",
    "Codec",
    "MediaKind",
    "NegotiatedParameters",
    "codec_key",
    "h264_packetization_mode",
]

MediaKind = Literal["audio", "video"]

#: rtcp-fb values offered/accepted for video codecs.
VIDEO_RTCP_FEEDBACK: tuple[str, ...] = (
    "goog-remb",
    "transport-cc",
    "ccm fir",
    "nack",
    "nack pli",
)
#: rtcp-fb values offered/accepted for audio codecs.
AUDIO_RTCP_FEEDBACK: tuple[str, ...] = ("transport-cc",)


@dataclass(frozen=True)
class Codec:
    """One RTP codec. ``mime_type`` is "video/VP8", "video/H264", "audio/opus", ...

    ``payload_type`` is None in configuration (the offerer assigns one) and
    set in negotiated codec lists. ``fmtp`` is the a=fmtp parameter string.
    """

    mime_type: str
    clock_rate: int
    channels: int | None = None
    fmtp: str = ""
    payload_type: int | None = None
    rtcp_feedback: tuple[str, ...] = ()

    @property
    def kind(self) -> MediaKind:
        """ "audio" or "video", from the mime type."""
        return "audio" if self.mime_type.lower().startswith("audio/") else "video"

    @property
    def name(self) -> str:
        """The encoding name (the part after the slash), e.g. "VP8"."""
        return self.mime_type.split("/", 1)[-1]


#: Defaults: VP8, H264 constrained baseline (packetization-mode=1), VP9 profile 0,
#: AV1 main profile, H265 Main (libwebrtc's fmtp; LiveKit's server registers H265 with
#: none, and H265's fmtp does not select a payload format) and opus. As answerer, any
#: H264 profile with packetization-mode=1 is accepted; VP9 and AV1 only in profile 0
#: (8-bit 4:2:0); H265 in any profile (the decoder converts to 8-bit 4:2:0).
DEFAULT_CODECS: tuple[Codec, ...] = (
    Codec("video/VP8", 90000, rtcp_feedback=VIDEO_RTCP_FEEDBACK),
    Codec(
        "video/H264",
        90000,
        fmtp="level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        rtcp_feedback=VIDEO_RTCP_FEEDBACK,
    ),
    Codec("video/VP9", 90000, fmtp="profile-id=0", rtcp_feedback=VIDEO_RTCP_FEEDBACK),
    Codec("video/AV1", 90000, fmtp="level-idx=5;profile=0;tier=0", rtcp_feedback=VIDEO_RTCP_FEEDBACK),
    Codec(
        "video/H265", 90000, fmtp="level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST", rtcp_feedback=VIDEO_RTCP_FEEDBACK
    ),
    Codec("audio/opus", 48000, 2, fmtp="minptime=10;useinbandfec=1", rtcp_feedback=AUDIO_RTCP_FEEDBACK),
)


@dataclass
class NegotiatedParameters:
    """One m-line's negotiated codecs (with payload types, preferred first) and header extensions (URI -> id).

    Shared by a transceiver with its sender and receiver; written by negotiation only.
    """

    codecs: list[Codec] = field(default_factory=list)
    extmap: dict[str, int] = field(default_factory=dict)


REJECTED_CODECS = frozenset({"rtx", "red", "ulpfec", "flexfec-03", "cn", "telephone-event"})
SUPPORTED_FEEDBACK = frozenset({"nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"})
VIDEO_ONLY_EXTENSIONS = frozenset({URI_RID, URI_REPAIRED_RID, URI_VIDEO_ORIENTATION})
AUDIO_ONLY_EXTENSIONS = frozenset({URI_AUDIO_LEVEL})


def codec_key(codec: Codec) -> tuple[str, int, int | None, str]:
    return (codec.mime_type.lower(), codec.clock_rate, codec.channels, codec.fmtp)


def h264_packetization_mode(fmtp: dict[str, str]) -> str:
    return fmtp.get("packetization-mode", "0")
