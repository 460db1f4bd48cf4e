"""What the SFU negotiates with every client: the codecs it forwards and the header extensions it reads.

The SFU never decodes, so it accepts every codec it can forward: VP8 and H264
(simulcast layers switched at keyframes), VP9 and AV1 (simulcast layers the
same way; an SVC stream forwarded whole, every spatial and temporal layer),
H265 and opus. Beyond the transport's own extensions it reads the RFC 6464 audio
level of publishers' audio for active-speaker detection.
"""

from __future__ import annotations

from kitewire.transport.codecs import DEFAULT_CODECS, Codec
from kitewire.transport.rtp import SUPPORTED_HEADER_EXTENSIONS

__all__ = ["PUBLISH_CODEC_MIMES", "SERVER_CODECS", "SERVER_HEADER_EXTENSIONS"]

#: Offered and accepted by every server PeerConnection: the transport's table, video first (VP8
#: preferred when the server offers).
SERVER_CODECS: tuple[Codec, ...] = tuple(DEFAULT_CODECS)

#: The JoinResponse's enabled_publish_codecs: what a client may publish here.
PUBLISH_CODEC_MIMES: tuple[str, ...] = tuple(codec.mime_type for codec in SERVER_CODECS)

#: The transport's extensions (they include the publishers' audio level, which active speakers read).
SERVER_HEADER_EXTENSIONS: tuple[str, ...] = SUPPORTED_HEADER_EXTENSIONS
