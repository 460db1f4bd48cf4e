"""SDP parsing, and answers to a browser-style (libwebrtc) simulcast offer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kitewire.transport import PeerConnection, Transceiver
from kitewire.transport.rtp import URI_MID, URI_RID, URI_TRANSPORT_CC
from kitewire.transport.sdp import parse_sdp, write_sdp

MakePc = Callable[..., PeerConnection]

# Shaped like what Chrome sends as a LiveKit publisher: data channel first,
# then a simulcast camera track with RTX/RED/ULPFEC, several H264 profiles,
# VP9 (profiles 0 and 2)/AV1 and extensions we do not support.
CHROME_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1 2",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0 network-id 1",
        "a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0",
        "a=candidate:3 1 udp 2122194687 10.1.2.3 50001 typ host generation 0",
        "a=ice-ufrag:Xk3t",
        "a=ice-pwd:0123456789abcdefghijklmn",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
        "a=setup:actpass",
        "a=mid:0",
        "a=sctp-port:5000",
        "a=max-message-size:262144",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 106 107 45 46 98 99 100 116 117 118",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:Xk3t",
        "a=ice-pwd:0123456789abcdefghijklmn",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
        "a=setup:actpass",
        "a=mid:1",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:toffset",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:3 urn:3gpp:video-orientation",
        "a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        "a=extmap:12 https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension",
        "a=sendonly",
        "a=msid:PA_stream TR_camera",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:96 VP8/90000",
        "a=rtcp-fb:96 goog-remb",
        "a=rtcp-fb:96 transport-cc",
        "a=rtcp-fb:96 ccm fir",
        "a=rtcp-fb:96 nack",
        "a=rtcp-fb:96 nack pli",
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=rtpmap:102 H264/90000",
        "a=rtcp-fb:102 goog-remb",
        "a=rtcp-fb:102 transport-cc",
        "a=rtcp-fb:102 nack",
        "a=rtcp-fb:102 nack pli",
        "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        "a=rtpmap:103 rtx/90000",
        "a=fmtp:103 apt=102",
        "a=rtpmap:106 H264/90000",
        "a=rtcp-fb:106 nack",
        "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
        "a=rtpmap:107 rtx/90000",
        "a=fmtp:107 apt=106",
        "a=rtpmap:45 AV1/90000",
        "a=rtcp-fb:45 nack",
        "a=rtpmap:46 rtx/90000",
        "a=fmtp:46 apt=45",
        "a=rtpmap:98 VP9/90000",
        "a=fmtp:98 profile-id=0",
        "a=rtpmap:99 rtx/90000",
        "a=fmtp:99 apt=98",
        "a=rtpmap:100 VP9/90000",
        "a=fmtp:100 profile-id=2",
        "a=rtpmap:116 red/90000",
        "a=rtpmap:117 rtx/90000",
        "a=fmtp:117 apt=116",
        "a=rtpmap:118 ulpfec/90000",
        "a=rid:q send",
        "a=rid:h send",
        "a=rid:f send",
        "a=simulcast:send q;h;f",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:Xk3t",
        "a=ice-pwd:0123456789abcdefghijklmn",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
        "a=setup:actpass",
        "a=mid:2",
        "a=extmap:14 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendonly",
        "a=msid:PA_stream TR_mic",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:13 CN/8000",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:126 telephone-event/8000",
        "a=ssrc:1001 cname:chromecname",
        "a=ssrc:1001 msid:PA_stream TR_mic",
        "",
    ]
)


def test_parse_browser_offer() -> None:
    session = parse_sdp(CHROME_OFFER)
    assert session.bundle == ["0", "1", "2"]
    data, video, audio = session.media
    assert data.kind == "application" and data.sctp_port == 5000 and len(data.candidates) == 3
    assert video.mid == "1" and video.direction == "sendonly"
    assert video.rids == [("q", "send"), ("h", "send"), ("f", "send")]
    assert video.simulcast == ("send", ["q", "h", "f"])
    assert video.msid == ("PA_stream", "TR_camera")
    vp8 = video.codecs[0]
    assert (vp8.payload_type, vp8.name, vp8.clock_rate) == (96, "VP8", 90000)
    assert vp8.rtcp_feedback == ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]
    assert video.codecs[1].fmtp_params() == {"apt": "96"}
    assert video.extmaps[URI_MID] == 9
    assert audio.ssrcs == {1001: {"cname": "chromecname", "msid": "PA_stream TR_mic"}}
    assert audio.codecs[0].channels == 2
    assert session.media_ice(video) == ("Xk3t", "0123456789abcdefghijklmn")
    # writing and re-parsing keeps what matters
    again = parse_sdp(write_sdp(session))
    assert again.media[1].rids == video.rids and again.media[1].extmaps == video.extmaps
    assert [c.payload_type for c in again.media[1].codecs] == [c.payload_type for c in video.codecs]


async def test_answer_to_browser_simulcast_offer(make_pc: MakePc) -> None:
    pc = make_pc()
    tracks: list[Transceiver] = []
    pc.on_track = tracks.append
    await pc.set_remote_description(CHROME_OFFER, "offer")
    answer_text = await pc.create_answer()
    answer = parse_sdp(answer_text)
    assert answer.bundle == ["0", "1", "2"]
    data, video, audio = answer.media
    assert [m.mid for m in answer.media] == ["0", "1", "2"]
    assert data.kind == "application" and data.sctp_port == 5000 and data.max_message_size
    assert data.setup == "active"
    # VP8, the packetization-mode=1 H264, AV1 and VP9 profile 0 only, offerer's payload types kept
    assert [(c.payload_type, c.name) for c in video.codecs] == [(96, "VP8"), (102, "H264"), (45, "AV1"), (98, "VP9")]
    assert "profile-level-id=42001f" in video.codecs[1].fmtp
    assert video.codecs[0].rtcp_feedback == ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]
    assert video.direction == "recvonly"
    assert video.extmaps == {
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 2,
        "urn:3gpp:video-orientation": 3,
        URI_TRANSPORT_CC: 4,
        URI_MID: 9,
        URI_RID: 10,
        "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id": 11,
    }
    assert video.rids == [("q", "recv"), ("h", "recv"), ("f", "recv")]
    assert video.simulcast == ("recv", ["q", "h", "f"])
    assert video.rtcp_mux and video.rtcp_rsize
    assert [(c.payload_type, c.name, c.channels) for c in audio.codecs] == [(111, "opus", 2)]
    assert "a=ssrc" not in answer_text  # we send nothing
    assert "rtx" not in answer_text and "red/" not in answer_text and "ulpfec" not in answer_text
    # only our loopback candidate, on the first bundled m-line
    assert len(data.candidates) == 1 and " 127.0.0.1 " in data.candidates[0]
    assert [t.kind for t in tracks] == ["video", "audio"]
    assert tracks[0].receiver.rids == ["q", "h", "f"]
    assert (tracks[0].remote_stream_id, tracks[0].remote_track_id) == ("PA_stream", "TR_camera")
    assert tracks[1].receiver.ssrcs == {1001: None}


async def test_unsupported_m_lines_are_rejected_with_port_0(make_pc: MakePc) -> None:
    offer = (
        CHROME_OFFER.replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP7/90000")
        .replace("packetization-mode=1", "packetization-mode=0")
        .replace("a=rtpmap:45 AV1/90000", "a=rtpmap:45 AV2/90000")
        .replace("a=fmtp:98 profile-id=0", "a=fmtp:98 profile-id=1")
    )
    offer = offer.replace("m=audio 9 UDP/TLS/RTP/SAVPF", "m=text 9 UDP/TLS/RTP/SAVPF")
    pc = make_pc()
    await pc.set_remote_description(offer, "offer")
    answer = parse_sdp(await pc.create_answer())
    assert answer.media[1].port == 0 and answer.media[2].port == 0
    assert answer.media[0].port != 0
    assert answer.bundle == ["0"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "v=0"),
        ("v=0\r\nbogus line\r\n", "<type>=<value>"),
        ("v=0\r\nm=video\r\n", "m=<media>"),
        ("v=0\r\nm=video x UDP/TLS/RTP/SAVPF 96\r\n", "integer port"),
        ("v=0\r\nm=video 9 RTP 96\r\na=rtpmap:96 VP8\r\n", "rtpmap"),
        ("v=0\r\nm=video 9 RTP 96\r\na=rid:q sideways\r\n", "rid"),
        ("v=0\r\nm=video 9 RTP 96\r\na=simulcast:q;h\r\n", "simulcast"),
        ("v=0\r\nm=video 9 RTP 96\r\na=extmap:x uri\r\n", "extmap id"),
        ("v=0\r\na=fingerprint:sha-256\r\n", "fingerprint"),
    ],
)
def test_malformed_sdp_raises_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sdp(text)


def test_non_string_sdp_rejected() -> None:
    with pytest.raises(ValueError, match="str expected"):
        parse_sdp(b"v=0")  # type: ignore[arg-type]


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mangled_sdp_raises_only_value_error(data: st.DataObject) -> None:
    lines = CHROME_OFFER.split("\r\n")
    for _ in range(data.draw(st.integers(1, 5))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "truncate", "garble", "duplicate"]))
        if action == "drop":
            lines.pop(index)
        elif action == "truncate":
            lines[index] = lines[index][: data.draw(st.integers(0, max(len(lines[index]) - 1, 0)))]
        elif action == "garble":
            lines[index] = data.draw(st.text(max_size=40))
        else:
            lines.insert(index, lines[index])
        if not lines:
            lines = [""]
    try:
        parse_sdp("\r\n".join(lines))
    except ValueError:
        pass


async def test_mangled_offers_never_break_the_connection_object(make_pc: MakePc) -> None:
    pc = make_pc()
    bad_offers = [
        CHROME_OFFER.replace("a=mid:1", "a=mid:0"),
        CHROME_OFFER.replace("a=ice-ufrag:Xk3t", "a=ice-ufrag:"),
        CHROME_OFFER.replace("a=fingerprint:sha-256 AB", "a=fingerprint:sha-256"),
        CHROME_OFFER.replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP8/ninety"),
        CHROME_OFFER.replace("a=candidate:1 1 udp", "a=candidate:1 one udp"),
    ]
    for offer in bad_offers[:4]:
        with pytest.raises(ValueError):
            await pc.set_remote_description(offer, "offer")
    # a malformed candidate inside an otherwise fine SDP is skipped, not fatal
    await pc.set_remote_description(bad_offers[4], "offer")
    answer = parse_sdp(await pc.create_answer())
    assert [m.port != 0 for m in answer.media] == [True, True, True]
