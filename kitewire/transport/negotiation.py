"""Offer/answer over the SDP model: the m-lines we offer and answer, and what remote ones mean for us.

Functions and one small stateful :class:`Negotiator` (payload type and
extension id allocations, the session id and version, and the transport's
ICE/DTLS attributes every m-line repeats). The session-level bookkeeping
(which mid is which m-line, signaling state) stays in
:class:`~kitewire.transport.PeerConnection`.
"""

from __future__ import annotations

import dataclasses
import secrets

from .aiortc_seam import SCTP_MAX_MESSAGE_SIZE, BundleTransport
from .codecs import (
    AUDIO_ONLY_EXTENSIONS,
    REJECTED_CODECS,
    SUPPORTED_FEEDBACK,
    VIDEO_ONLY_EXTENSIONS,
    Codec,
    MediaKind,
    codec_key,
    h264_packetization_mode,
)
from .sdp import SdpCodec, SdpMedia, SdpSession
from .transceiver import Direction, Transceiver

__all__ = [
    "Negotiator",
    "apply_remote_media",
    "rejected_media",
    "to_sdp_codec",
    "validate_remote",
]

# Codecs one answered m-line lists; our codec lists are a handful, profiles included.
_MAX_ANSWER_CODECS = 16


class Negotiator:
    """Writes our side of the SDP: the session, offered and answered m-lines.

    ``codecs`` and ``header_extensions`` are what we offer and accept (a
    :class:`~kitewire.transport.PeerConnectionConfig`'s); payload types and
    extension ids, once allocated, stay the same for the whole session.
    """

    def __init__(
        self, transport: BundleTransport, *, codecs: list[Codec], header_extensions: list[str], cname: str
    ) -> None:
        self._transport = transport
        self._codecs = codecs
        self._header_extensions = header_extensions
        self._cname = cname
        self._session_id = str(secrets.randbits(62))
        self._session_version = 0
        self._pt_allocation: dict[tuple[str, int, int | None, str], int] = {}
        self._ext_allocation: dict[str, int] = {}

    def base_session(self) -> SdpSession:
        self._session_version += 1
        return SdpSession(
            session_id=self._session_id,
            session_version=self._session_version,
            extmap_allow_mixed=True,
        )

    def transport_attrs(self, media: SdpMedia, setup: str) -> None:
        # Read straight from the ICE connection: once per m-line, a parameters object each time adds up.
        media.ice_ufrag = self._transport.local_username
        media.ice_pwd = self._transport.local_password
        media.ice_options = "trickle"
        media.fingerprints.extend(self._transport.fingerprints)
        media.setup = setup

    def finish_session(self, session: SdpSession) -> None:
        session.bundle = [m.mid for m in session.media if not m.rejected and m.mid is not None]
        first = next((m for m in session.media if not m.rejected), None)
        if first is not None:
            candidates = self._transport.local_candidates()
            first.candidates = [c.sdp for c in candidates]
            first.end_of_candidates = True
            if candidates:
                first.connection_address = candidates[0].host
                first.port = candidates[0].port

    def application_media(self, mid: str, setup: str, offered: SdpMedia | None = None) -> SdpMedia:
        protocol = offered.protocol if offered is not None else "UDP/DTLS/SCTP"
        formats = offered.formats if offered is not None else ["webrtc-datachannel"]
        media = SdpMedia(kind="application", port=9, protocol=protocol, formats=list(formats), mid=mid)
        self.transport_attrs(media, setup)
        media.sctp_port = 5000
        media.max_message_size = SCTP_MAX_MESSAGE_SIZE
        return media

    def allocate_pt(self, codec: Codec) -> int:
        key = codec_key(codec)
        pt = self._pt_allocation.get(key)
        if pt is None:
            used = set(self._pt_allocation.values())
            preferred = 111 if codec.name.lower() == "opus" else 96
            pt = preferred
            while pt in used or pt > 127:
                pt = pt + 1 if pt < 127 else 96
            self._pt_allocation[key] = pt
        return pt

    def local_codecs(self, transceiver: Transceiver) -> list[Codec]:
        source = transceiver.preferred_codecs
        if source is None:
            source = [c for c in self._codecs if c.kind == transceiver.kind]
        return list(source)

    def local_extensions(self, kind: str) -> list[str]:
        other_kind_only = AUDIO_ONLY_EXTENSIONS if kind == "video" else VIDEO_ONLY_EXTENSIONS
        return [uri for uri in self._header_extensions if uri not in other_kind_only]

    def offer_media(self, transceiver: Transceiver) -> SdpMedia:
        assert transceiver.mid is not None
        if transceiver.stopped:
            return SdpMedia(
                kind=transceiver.kind,
                port=0,
                protocol="UDP/TLS/RTP/SAVPF",
                formats=[str(c.payload_type) for c in transceiver.parameters.codecs] or ["0"],
                mid=transceiver.mid,
            )
        media = SdpMedia(kind=transceiver.kind, port=9, protocol="UDP/TLS/RTP/SAVPF", formats=[], mid=transceiver.mid)
        # Like libwebrtc, every offer says actpass; an established DTLS role is
        # kept whatever a later answer says.
        self.transport_attrs(media, "actpass")
        media.rtcp_mux = True
        media.rtcp_rsize = True
        media.direction = transceiver.direction
        if transceiver.current_direction is not None and transceiver.parameters.codecs:
            # Renegotiation keeps what was agreed (payload types and ids).
            codecs = list(transceiver.parameters.codecs)
            extmap = dict(transceiver.parameters.extmap)
        else:
            codecs = []
            for codec in self.local_codecs(transceiver):
                pt = codec.payload_type if codec.payload_type is not None else self.allocate_pt(codec)
                codecs.append(dataclasses.replace(codec, payload_type=pt))
            extmap = {}
            for uri in self.local_extensions(transceiver.kind):
                ext_id = self._ext_allocation.get(uri)
                if ext_id is None:
                    ext_id = len(self._ext_allocation) + 1
                    self._ext_allocation[uri] = ext_id
                extmap[uri] = ext_id
            transceiver.parameters.codecs = codecs
            transceiver.parameters.extmap = extmap
        media.codecs = [to_sdp_codec(c) for c in codecs]
        media.formats = [str(c.payload_type) for c in codecs]
        media.extmaps = dict(extmap)
        self.write_send_identity(media, transceiver, offering=True)
        return media

    def write_send_identity(self, media: SdpMedia, transceiver: Transceiver, *, offering: bool) -> None:
        if not transceiver.sends():
            return
        media.msid = (transceiver.stream_id, transceiver.track_id)
        sender = transceiver.sender
        if sender.simulcast and offering:
            media.rids = [(e.rid, "send") for e in sender.encodings]
            media.simulcast = ("send", [e.rid for e in sender.encodings])
            return
        ssrc = sender.ssrc
        media.ssrcs[ssrc] = {
            "cname": self._cname,
            "msid": f"{transceiver.stream_id} {transceiver.track_id}",
        }

    def match_codec(self, offered: SdpCodec, kind: str, local: dict[str, list[Codec]]) -> Codec | None:
        """Our codec for an offered one; ``local`` maps lower-cased names to our codecs."""
        same_name = local.get(offered.name.lower())
        if not same_name:
            return None  # the common case for a foreign codec: one dict lookup
        name = offered.name.lower()
        params = offered.fmtp_params()
        for codec in same_name:
            if codec.clock_rate != offered.clock_rate:
                continue
            if name == "opus" and (offered.channels or 1) != (codec.channels or 1):
                continue
            if name == "h264" and h264_packetization_mode(params) != "1":
                continue
            # 10-bit and 4:4:4 profiles are not decoded into our 8-bit 4:2:0 frames
            if name == "vp9" and params.get("profile-id", "0") != "0":
                continue
            if name == "av1" and params.get("profile", "0") != "0":
                continue
            feedback = tuple(fb for fb in offered.rtcp_feedback if fb in SUPPORTED_FEEDBACK)
            return Codec(
                mime_type=f"{kind}/{codec.name}",
                clock_rate=offered.clock_rate,
                channels=offered.channels,
                fmtp=offered.fmtp,
                payload_type=offered.payload_type,
                rtcp_feedback=feedback,
            )
        return None

    def answer_media(self, offered: SdpMedia, transceiver: Transceiver, setup: str) -> SdpMedia:
        kind: MediaKind = "video" if offered.kind == "video" else "audio"
        local: dict[str, list[Codec]] = {}
        for codec in self.local_codecs(transceiver):
            if codec.name.lower() not in REJECTED_CODECS:
                local.setdefault(codec.name.lower(), []).append(codec)
        codecs: list[Codec] = []
        for offered_codec in offered.codecs:
            match = self.match_codec(offered_codec, kind, local)
            if match is not None:
                codecs.append(match)
                if len(codecs) >= _MAX_ANSWER_CODECS:
                    break  # an offer repeating one codec cannot make the answer long
        if not codecs:
            transceiver.parameters.codecs = []
            transceiver.current_direction = None
            return rejected_media(offered)
        if transceiver.answer_codec_order:
            # The remote sends with the answer's first codec: put the ones asked for first (stable for the rest).
            rank = {name: index for index, name in enumerate(transceiver.answer_codec_order)}
            codecs.sort(key=lambda c: rank.get(c.name.lower(), len(rank)))
        accepted_ext = set(self._header_extensions)
        extmap = {uri: ext_id for uri, ext_id in offered.extmaps.items() if uri in accepted_ext}
        transceiver.parameters.codecs = codecs
        transceiver.parameters.extmap = extmap
        remote_sends = offered.direction in (None, "sendrecv", "sendonly")
        remote_receives = offered.direction in (None, "sendrecv", "recvonly")
        we_send = remote_receives and transceiver.sends()
        we_receive = remote_sends and transceiver.receives()
        direction: Direction = (
            "sendrecv"
            if we_send and we_receive
            else "sendonly"
            if we_send
            else "recvonly"
            if we_receive
            else "inactive"
        )
        transceiver.current_direction = direction
        media = SdpMedia(
            kind=offered.kind,
            port=9,
            protocol=offered.protocol,
            formats=[str(c.payload_type) for c in codecs],
            mid=offered.mid,
        )
        self.transport_attrs(media, setup)
        media.rtcp_mux = True
        media.rtcp_rsize = offered.rtcp_rsize
        media.direction = direction
        media.codecs = [to_sdp_codec(c) for c in codecs]
        media.extmaps = dict(extmap)
        send_rids = [rid for rid, d in offered.rids if d == "send"]
        if we_receive and send_rids:
            order = offered.simulcast[1] if offered.simulcast and offered.simulcast[0] == "send" else send_rids
            media.rids = [(rid, "recv") for rid in send_rids]
            media.simulcast = ("recv", [rid for rid in order if rid in send_rids])
        if we_send:
            self.write_send_identity(media, transceiver, offering=False)
        return media

    def apply_answer_media(self, transceiver: Transceiver, m: SdpMedia) -> None:
        """Narrow our offered codecs and extensions to what the answer ``m`` accepted; set the direction."""
        codecs: list[Codec] = []
        offered = {c.payload_type: c for c in transceiver.parameters.codecs}
        for sdp_codec in m.codecs:
            mine = offered.get(sdp_codec.payload_type)
            if mine is None or sdp_codec.name.lower() in REJECTED_CODECS:
                continue
            codecs.append(
                Codec(
                    mime_type=f"{transceiver.kind}/{sdp_codec.name}",
                    clock_rate=sdp_codec.clock_rate,
                    channels=sdp_codec.channels,
                    fmtp=sdp_codec.fmtp or mine.fmtp,
                    payload_type=sdp_codec.payload_type,
                    rtcp_feedback=tuple(f for f in sdp_codec.rtcp_feedback if f in SUPPORTED_FEEDBACK),
                )
            )
        transceiver.parameters.codecs = codecs
        transceiver.parameters.extmap = {
            uri: ext_id for uri, ext_id in m.extmaps.items() if transceiver.parameters.extmap.get(uri) == ext_id
        }
        remote = m.direction or "sendrecv"
        transceiver.current_direction = {
            "sendrecv": "sendrecv",
            "sendonly": "recvonly",
            "recvonly": "sendonly",
            "inactive": "inactive",
        }[remote]  # type: ignore[assignment]


def to_sdp_codec(codec: Codec) -> SdpCodec:
    """The SDP rtpmap/fmtp/rtcp-fb view of a negotiated codec."""
    assert codec.payload_type is not None
    return SdpCodec(
        payload_type=codec.payload_type,
        name=codec.name,
        clock_rate=codec.clock_rate,
        channels=codec.channels,
        fmtp=codec.fmtp,
        rtcp_feedback=list(codec.rtcp_feedback),
    )


def rejected_media(offered: SdpMedia) -> SdpMedia:
    """A port-0 m-line refusing ``offered`` (kind, protocol, formats and mid kept)."""
    return SdpMedia(
        kind=offered.kind,
        port=0,
        protocol=offered.protocol,
        formats=list(offered.formats) or ["0"],
        mid=offered.mid,
    )


def validate_remote(
    session: SdpSession, known_ufrag: str | None
) -> tuple[tuple[str, str, bool], list[tuple[str, str]]] | None:
    """Check a remote description; return its ICE and DTLS parameters (None if all rejected)."""
    mids = [m.mid for m in session.media if m.mid is not None]
    if len(mids) != len(set(mids)):
        raise ValueError(f"SDP: unique a=mid values expected, got {mids}")
    live = [m for m in session.media if not m.rejected]
    for m in live:
        if m.kind in ("audio", "video") and m.mid is None:
            raise ValueError(f"SDP: a=mid expected on every m-line, got none on m={m.kind}")
    if not live:
        return None
    # Everything is bundled on one transport: the first live m-line's ICE
    # and DTLS parameters are the ones that count (others may omit them).
    first = live[0]
    ufrag, pwd = session.media_ice(first)
    if not ufrag or not pwd:
        raise ValueError(f"SDP: a=ice-ufrag and a=ice-pwd expected for m-line mid={first.mid!r}, got none")
    fingerprints = list(session.media_fingerprints(first))
    if not fingerprints:
        raise ValueError(f"SDP: a=fingerprint expected for m-line mid={first.mid!r}, got none")
    if known_ufrag is not None and known_ufrag != ufrag:
        raise ValueError(f"SDP: ICE restart is not supported (ufrag {known_ufrag!r} expected, got {ufrag!r})")
    return (ufrag, pwd, session.ice_lite), fingerprints


def apply_remote_media(transceiver: Transceiver, m: SdpMedia) -> None:
    """Take what a remote m-line says about its sending side: msid, simulcast rids, SSRCs, direction."""
    if m.msid is not None:
        transceiver.remote_stream_id, transceiver.remote_track_id = m.msid
    else:
        for attrs in m.ssrcs.values():
            msid = attrs.get("msid")
            if msid:
                parts = msid.split()
                transceiver.remote_stream_id = parts[0]
                transceiver.remote_track_id = parts[1] if len(parts) > 1 else ""
                break
    receiver = transceiver.receiver
    receiver.remote_rids = [rid for rid, d in m.rids if d == "send"]
    if not receiver.remote_rids:
        for ssrc in m.ssrcs:
            receiver.ssrc_rids.setdefault(ssrc, None)
    transceiver.remote_sends = (m.direction or "sendrecv") in ("sendrecv", "sendonly")
