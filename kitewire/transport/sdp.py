"""SDP model, parser and writer for bundled WebRTC sessions.

Only what WebRTC endpoints (libwebrtc, pion, aiortc) put into SDP is
interpreted; other attributes are kept verbatim in ``SdpMedia.other`` so
nothing is silently lost when a description is inspected. Parsing is strict
about structure (ValueError naming the offending line) and lenient about
unknown attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DIRECTIONS",
    "MAX_CODECS_PER_SECTION",
    "MAX_MEDIA_SECTIONS",
    "MAX_RIDS_PER_SECTION",
    "MAX_SSRCS_PER_SECTION",
    "SdpCodec",
    "SdpMedia",
    "SdpSession",
    "check_media_sections",
    "parse_sdp",
    "write_sdp",
]

DIRECTIONS: tuple[str, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")
DirectionStr = Literal["sendrecv", "sendonly", "recvonly", "inactive"]

#: m-lines one description may carry. LiveKit's publisher PeerConnection uses a
#: handful; a single-PeerConnection (/rtc/v1) session adds one per subscription
#: and keeps spent ones, so the bound leaves room for hundreds of subscriptions
#: over a session's life while keeping one description's work to milliseconds.
#: A 1 MiB signal message already caps a browser's offer (~2.5 kB per video
#: m-line) near 400; only hand-made minimal m-lines get further.
MAX_MEDIA_SECTIONS = 512
#: a=rtpmap lines one m-line may carry: payload types are 7-bit.
MAX_CODECS_PER_SECTION = 128
#: Distinct a=ssrc ids one m-line may carry (simulcast with RTX and FEC uses about ten).
MAX_SSRCS_PER_SECTION = 64
#: a=rid lines one m-line may carry (simulcast uses up to four layers).
MAX_RIDS_PER_SECTION = 16


@dataclass
class SdpCodec:
    """One payload type of an m-line: rtpmap + fmtp + rtcp-fb."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: str = ""
    rtcp_feedback: list[str] = field(default_factory=list)

    def fmtp_params(self) -> dict[str, str]:
        """The fmtp string as a dict (keys lower-cased)."""
        params: dict[str, str] = {}
        for part in self.fmtp.split(";"):
            part = part.strip()
            if not part:
                continue
            key, _, value = part.partition("=")
            params[key.strip().lower()] = value.strip()
        return params


@dataclass
class SdpMedia:
    """One m-section."""

    kind: str  # "audio", "video", "application", ...
    port: int
    protocol: str
    formats: list[str]
    mid: str | None = None
    direction: str | None = None
    codecs: list[SdpCodec] = field(default_factory=list)
    extmaps: dict[str, int] = field(default_factory=dict)
    #: (rid, "send"|"recv") in SDP order.
    rids: list[tuple[str, str]] = field(default_factory=list)
    #: ("send"|"recv", [rid, ...]) from a=simulcast (paused "~" marks stripped).
    simulcast: tuple[str, list[str]] | None = None
    #: ssrc -> {attribute: value} from a=ssrc lines.
    ssrcs: dict[int, dict[str, str]] = field(default_factory=dict)
    ssrc_groups: list[tuple[str, list[int]]] = field(default_factory=list)
    msid: tuple[str, str] | None = None
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_options: str | None = None
    fingerprints: list[tuple[str, str]] = field(default_factory=list)
    setup: str | None = None
    candidates: list[str] = field(default_factory=list)
    end_of_candidates: bool = False
    rtcp_mux: bool = False
    rtcp_rsize: bool = False
    sctp_port: int | None = None
    max_message_size: int | None = None
    connection_address: str = "0.0.0.0"
    other: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        """True for a port-0 (rejected or removed) m-line."""
        return self.port == 0


@dataclass
class SdpSession:
    """A whole session description."""

    session_id: str = "0"
    session_version: int = 0
    bundle: list[str] = field(default_factory=list)
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_lite: bool = False
    fingerprints: list[tuple[str, str]] = field(default_factory=list)
    setup: str | None = None
    extmap_allow_mixed: bool = False
    media: list[SdpMedia] = field(default_factory=list)

    def media_ice(self, media: SdpMedia) -> tuple[str | None, str | None]:
        """ICE ufrag/pwd of an m-line, falling back to session level."""
        return (media.ice_ufrag or self.ice_ufrag, media.ice_pwd or self.ice_pwd)

    def media_fingerprints(self, media: SdpMedia) -> list[tuple[str, str]]:
        """Fingerprints of an m-line, falling back to session level."""
        return media.fingerprints or self.fingerprints

    def media_setup(self, media: SdpMedia) -> str | None:
        """a=setup of an m-line, falling back to session level."""
        return media.setup or self.setup


def _int(text: str, what: str, line: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"SDP: integer {what} expected in {line!r}, got {text!r}") from None


def check_media_sections(text: str, max_media_sections: int = MAX_MEDIA_SECTIONS) -> None:
    """Raise ValueError naming the limit if ``text`` has more than ``max_media_sections`` m-lines.

    A scan of the text (well under a millisecond for a megabyte), so an
    oversized description is refused before any per-line work.
    """
    sections = text.count("\nm=") + text.startswith("m=")
    if sections > max_media_sections:
        raise ValueError(f"SDP: at most {max_media_sections} m-lines per description expected, got {sections}")


def parse_sdp(text: str, *, max_media_sections: int = MAX_MEDIA_SECTIONS) -> SdpSession:
    """Parse an SDP string. Raises ValueError naming the first malformed line,
    or the limit when there are more than ``max_media_sections`` m-lines.
    """
    if not isinstance(text, str):
        raise ValueError(f"SDP: str expected, got {type(text).__name__}")
    check_media_sections(text, max_media_sections)
    lines = [line.rstrip("\r") for line in text.split("\n")]
    lines = [line for line in lines if line.strip()]
    if not lines or not lines[0].startswith("v="):
        first = lines[0] if lines else ""
        raise ValueError(f"SDP: must start with 'v=0', got {first[:60]!r}")
    session = SdpSession()
    media: SdpMedia | None = None
    codec_by_pt: dict[int, SdpCodec] = {}
    pending_fb: list[tuple[str, str]] = []
    pending_fmtp: list[tuple[int, str]] = []

    def finish_media() -> None:
        if media is None:
            return
        for pt_text, fb in pending_fb:
            if pt_text == "*":
                for codec in media.codecs:
                    codec.rtcp_feedback.append(fb)
            else:
                target = codec_by_pt.get(_int(pt_text, "payload type", f"a=rtcp-fb:{pt_text}"))
                if target is not None:
                    target.rtcp_feedback.append(fb)
        for pt, fmtp in pending_fmtp:
            target = codec_by_pt.get(pt)
            if target is not None:
                target.fmtp = fmtp
        pending_fb.clear()
        pending_fmtp.clear()

    for line in lines:
        if len(line) < 2 or line[1] != "=":
            raise ValueError(f"SDP: '<type>=<value>' line expected, got {line[:80]!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            finish_media()
            parts = value.split()
            if len(parts) < 3:
                raise ValueError(f"SDP: 'm=<media> <port> <proto> <fmt>...' expected, got {line!r}")
            port_text = parts[1].split("/")[0]
            media = SdpMedia(
                kind=parts[0],
                port=_int(port_text, "port", line),
                protocol=parts[2],
                formats=parts[3:],
            )
            codec_by_pt = {}
            session.media.append(media)
            continue
        if kind == "o" and media is None:
            parts = value.split()
            if len(parts) >= 3:
                session.session_id = parts[1]
                session.session_version = _int(parts[2], "session version", line) if parts[2].isdigit() else 0
            continue
        if kind == "c" and media is not None:
            parts = value.split()
            if len(parts) >= 3:
                media.connection_address = parts[2]
            continue
        if kind != "a":
            continue
        name, sep, attr = value.partition(":")
        if media is None:
            _parse_session_attribute(session, name, attr, line)
        else:
            _parse_media_attribute(media, name, attr if sep else None, line, codec_by_pt, pending_fb, pending_fmtp)
    finish_media()
    return session


def _parse_session_attribute(session: SdpSession, name: str, attr: str, line: str) -> None:
    if name == "group":
        parts = attr.split()
        if parts and parts[0] == "BUNDLE":
            session.bundle = parts[1:]
    elif name == "ice-lite":
        session.ice_lite = True
    elif name == "extmap-allow-mixed":
        session.extmap_allow_mixed = True
    else:
        _parse_transport_attribute(session, name, attr, line)


def _parse_transport_attribute(target: SdpSession | SdpMedia, name: str, attr: str, line: str) -> bool:
    """ICE and DTLS attributes, which may stand at session or media level; False if ``name`` is none of them."""
    if name == "ice-ufrag":
        target.ice_ufrag = attr
    elif name == "ice-pwd":
        target.ice_pwd = attr
    elif name == "fingerprint":
        target.fingerprints.append(_parse_fingerprint(attr, line))
    elif name == "setup":
        target.setup = attr
    else:
        return False
    return True


def _parse_fingerprint(attr: str, line: str) -> tuple[str, str]:
    parts = attr.split()
    if len(parts) != 2:
        raise ValueError(f"SDP: 'a=fingerprint:<algorithm> <hex>' expected, got {line!r}")
    return parts[0].lower(), parts[1].upper()


def _parse_media_attribute(
    media: SdpMedia,
    name: str,
    attr: str | None,
    line: str,
    codec_by_pt: dict[int, SdpCodec],
    pending_fb: list[tuple[str, str]],
    pending_fmtp: list[tuple[int, str]],
) -> None:
    a = attr or ""
    if name in DIRECTIONS and attr is None:
        media.direction = name
    elif name == "mid":
        media.mid = a
    elif name == "rtpmap":
        pt_text, _, encoding = a.partition(" ")
        pt = _int(pt_text, "payload type", line)
        enc_parts = encoding.strip().split("/")
        if len(enc_parts) < 2:
            raise ValueError(f"SDP: 'a=rtpmap:<pt> <name>/<clock>[/<channels>]' expected, got {line!r}")
        if len(media.codecs) >= MAX_CODECS_PER_SECTION:
            raise ValueError(f"SDP: at most {MAX_CODECS_PER_SECTION} a=rtpmap lines per m-line expected, got more")
        codec = SdpCodec(
            payload_type=pt,
            name=enc_parts[0],
            clock_rate=_int(enc_parts[1], "clock rate", line),
            channels=_int(enc_parts[2], "channels", line) if len(enc_parts) > 2 else None,
        )
        codec_by_pt[pt] = codec
        media.codecs.append(codec)
    elif name == "fmtp":
        pt_text, _, params = a.partition(" ")
        pending_fmtp.append((_int(pt_text, "payload type", line), params.strip()))
    elif name == "rtcp-fb":
        pt_text, _, fb = a.partition(" ")
        pending_fb.append((pt_text, fb.strip()))
    elif name == "extmap":
        id_text, _, rest = a.partition(" ")
        ext_id = _int(id_text.split("/")[0], "extmap id", line)
        uri = rest.split()[0] if rest.split() else ""
        if not uri:
            raise ValueError(f"SDP: 'a=extmap:<id> <uri>' expected, got {line!r}")
        media.extmaps[uri] = ext_id
    elif name == "rid":
        parts = a.split()
        if len(parts) < 2 or parts[1] not in ("send", "recv"):
            raise ValueError(f"SDP: 'a=rid:<id> send|recv' expected, got {line!r}")
        if len(media.rids) >= MAX_RIDS_PER_SECTION:
            raise ValueError(f"SDP: at most {MAX_RIDS_PER_SECTION} a=rid lines per m-line expected, got more")
        media.rids.append((parts[0], parts[1]))
    elif name == "simulcast":
        parts = a.split()
        if len(parts) < 2 or parts[0] not in ("send", "recv"):
            raise ValueError(f"SDP: 'a=simulcast:send|recv <rids>' expected, got {line!r}")
        rids = [r.lstrip("~") for alt in parts[1].split(";") for r in alt.split(",")[:1]]
        media.simulcast = (parts[0], [r for r in rids if r])
    elif name == "ssrc":
        ssrc_text, _, rest = a.partition(" ")
        ssrc = _int(ssrc_text, "ssrc", line)
        key, _, val = rest.partition(":")
        if ssrc not in media.ssrcs and len(media.ssrcs) >= MAX_SSRCS_PER_SECTION:
            raise ValueError(f"SDP: at most {MAX_SSRCS_PER_SECTION} a=ssrc ids per m-line expected, got more")
        media.ssrcs.setdefault(ssrc, {})
        if key:
            media.ssrcs[ssrc][key] = val
    elif name == "ssrc-group":
        parts = a.split()
        if parts:
            media.ssrc_groups.append((parts[0], [_int(p, "ssrc", line) for p in parts[1:]]))
    elif name == "msid":
        parts = a.split()
        if parts:
            media.msid = (parts[0], parts[1] if len(parts) > 1 else "")
    elif name == "ice-options":
        media.ice_options = a
    elif _parse_transport_attribute(media, name, a, line):
        pass
    elif name == "candidate":
        media.candidates.append(a)
    elif name == "end-of-candidates":
        media.end_of_candidates = True
    elif name == "rtcp-mux":
        media.rtcp_mux = True
    elif name == "rtcp-rsize":
        media.rtcp_rsize = True
    elif name == "sctp-port":
        media.sctp_port = _int(a, "sctp port", line)
    elif name == "sctpmap":
        # Legacy form "a=sctpmap:5000 webrtc-datachannel 1024".
        media.sctp_port = _int(a.split()[0] if a.split() else "", "sctp port", line)
    elif name == "max-message-size":
        media.max_message_size = _int(a, "max message size", line)
    else:
        media.other.append(line)


def write_sdp(session: SdpSession) -> str:
    """Serialise a session in the attribute order libwebrtc produces."""
    out = [
        "v=0",
        f"o=- {session.session_id} {session.session_version} IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
    ]
    if session.bundle:
        out.append("a=group:BUNDLE " + " ".join(session.bundle))
    if session.extmap_allow_mixed:
        out.append("a=extmap-allow-mixed")
    if session.ice_lite:
        out.append("a=ice-lite")
    out.append("a=msid-semantic: WMS *")
    for media in session.media:
        _write_media(session, media, out)
    return "\r\n".join(out) + "\r\n"


def _write_media(session: SdpSession, media: SdpMedia, out: list[str]) -> None:
    formats = media.formats or [str(c.payload_type) for c in media.codecs]
    out.append(f"m={media.kind} {media.port} {media.protocol} {' '.join(formats)}")
    out.append(f"c=IN IP4 {media.connection_address}")
    if media.kind != "application" and not media.rejected:
        out.append("a=rtcp:9 IN IP4 0.0.0.0")
    if media.rejected:
        # A rejected m-line keeps only its identity so mids stay stable.
        if media.mid is not None:
            out.append(f"a=mid:{media.mid}")
        out.append("a=inactive")
        return
    for candidate in media.candidates:
        out.append(f"a=candidate:{candidate}")
    if media.end_of_candidates:
        out.append("a=end-of-candidates")
    if media.ice_ufrag:
        out.append(f"a=ice-ufrag:{media.ice_ufrag}")
    if media.ice_pwd:
        out.append(f"a=ice-pwd:{media.ice_pwd}")
    if media.ice_options:
        out.append(f"a=ice-options:{media.ice_options}")
    for algorithm, value in media.fingerprints:
        out.append(f"a=fingerprint:{algorithm} {value}")
    if media.setup:
        out.append(f"a=setup:{media.setup}")
    if media.mid is not None:
        out.append(f"a=mid:{media.mid}")
    if media.kind == "application":
        if media.sctp_port is not None:
            out.append(f"a=sctp-port:{media.sctp_port}")
        if media.max_message_size is not None:
            out.append(f"a=max-message-size:{media.max_message_size}")
        out.extend(media.other)
        return
    for uri, ext_id in sorted(media.extmaps.items(), key=lambda item: item[1]):
        out.append(f"a=extmap:{ext_id} {uri}")
    if media.direction:
        out.append(f"a={media.direction}")
    if media.msid is not None:
        out.append(f"a=msid:{media.msid[0]} {media.msid[1]}")
    if media.rtcp_mux:
        out.append("a=rtcp-mux")
    if media.rtcp_rsize:
        out.append("a=rtcp-rsize")
    for codec in media.codecs:
        channels = f"/{codec.channels}" if codec.channels else ""
        out.append(f"a=rtpmap:{codec.payload_type} {codec.name}/{codec.clock_rate}{channels}")
        for fb in codec.rtcp_feedback:
            out.append(f"a=rtcp-fb:{codec.payload_type} {fb}")
        if codec.fmtp:
            out.append(f"a=fmtp:{codec.payload_type} {codec.fmtp}")
    for rid, rid_direction in media.rids:
        out.append(f"a=rid:{rid} {rid_direction}")
    if media.simulcast is not None:
        out.append(f"a=simulcast:{media.simulcast[0]} {';'.join(media.simulcast[1])}")
    for semantics, group in media.ssrc_groups:
        out.append(f"a=ssrc-group:{semantics} {' '.join(str(s) for s in group)}")
    for ssrc, attrs in media.ssrcs.items():
        for key, value in attrs.items():
            out.append(f"a=ssrc:{ssrc} {key}:{value}")
    out.extend(media.other)
