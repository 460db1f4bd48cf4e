"""Our PeerConnection against our PeerConnection over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from kitewire.transport import (
    IceCandidateInit,
    PeerConnection,
    RtpHeader,
    SendEncoding,
    Transceiver,
)
from kitewire.transport.rtcp import (
    ReportBlock,
    SenderReport,
    TransportCcFeedback,
    build_receiver_report,
    build_remb,
)
from kitewire.transport.rtp import (
    URI_ABS_CAPTURE_TIME,
    URI_MID,
    URI_RID,
    URI_TRANSPORT_CC,
    decode_abs_capture_time,
    encode_abs_capture_time,
    encode_transport_cc,
)
from transport_helpers import negotiate, wait_for

MakePc = Callable[..., PeerConnection]


def collect(transceiver: Transceiver) -> list[tuple[bytes, RtpHeader]]:
    """Every RTP packet ``transceiver`` receives from now on, with its parsed header."""
    received: list[tuple[bytes, RtpHeader]] = []
    transceiver.receiver.on_rtp = lambda data, header: received.append((data, header))
    return received


def send_one(transceiver: Transceiver, payload: bytes, sequence_number: int) -> None:
    """One RTP packet on ``transceiver``'s first negotiated codec, timestamped with its sequence number."""
    payload_type = transceiver.codecs[0].payload_type
    assert payload_type is not None
    packet = transceiver.sender.build_packet(
        payload, payload_type=payload_type, sequence_number=sequence_number, timestamp=sequence_number
    )
    transceiver.sender.send_rtp(packet)


async def connected_pair(make_pc: MakePc) -> tuple[PeerConnection, PeerConnection, Transceiver, list[Transceiver]]:
    offerer, answerer = make_pc(), make_pc()
    sending = offerer.add_transceiver("video", "sendonly")
    tracks: list[Transceiver] = []
    answerer.on_track = tracks.append
    await negotiate(offerer, answerer)
    await asyncio.gather(offerer.wait_connected(10), answerer.wait_connected(10))
    return offerer, answerer, sending, tracks


async def test_raw_rtp_arrives_with_parsed_header(make_pc: MakePc) -> None:
    offerer, answerer, sending, tracks = await connected_pair(make_pc)
    assert len(tracks) == 1 and tracks[0].kind == "video"
    received = collect(tracks[0])
    vp8 = next(c for c in sending.codecs if c.name == "VP8")
    assert vp8.payload_type is not None
    capture = encode_abs_capture_time(123_456_789)
    sent = [
        sending.sender.build_packet(
            bytes([i]) * 200,
            payload_type=vp8.payload_type,
            sequence_number=65530 + i,
            timestamp=1000 * i,
            marker=i % 2 == 1,
            extensions={URI_ABS_CAPTURE_TIME: capture},
        )
        for i in range(10)
    ]
    for packet in sent:
        sending.sender.send_rtp(packet)
    await wait_for(lambda: len(received) == 10)
    assert [data for data, _ in received] == sent
    header = received[3][1]
    assert header.ssrc == sending.sender.ssrc
    assert header.sequence_number == (65530 + 3) & 0xFFFF
    assert header.timestamp == 3000 and header.marker
    assert header.payload_type == vp8.payload_type and header.rid is None
    assert received[3][0][header.payload_offset : header.payload_end] == bytes([3]) * 200
    ext_ids = tracks[0].header_extensions
    assert header.extensions[ext_ids[URI_MID]] == sending.mid.encode()  # type: ignore[union-attr]
    assert decode_abs_capture_time(header.extensions[ext_ids[URI_ABS_CAPTURE_TIME]]) == (123_456_789, None)
    assert sending.sender.packets_sent == 10
    assert offerer.malformed_rtp == answerer.malformed_rtp == 0


async def test_rtp_flows_both_ways_on_sendrecv(make_pc: MakePc) -> None:
    a, b = make_pc(), make_pc()
    ta = a.add_transceiver("video", "sendrecv")
    tracks_a: list[Transceiver] = []
    tracks_b: list[Transceiver] = []
    a.on_track = tracks_a.append

    def on_b_track(t: Transceiver) -> None:
        t.direction = "sendrecv"  # answer with sending too
        tracks_b.append(t)

    b.on_track = on_b_track
    await negotiate(a, b)
    await asyncio.gather(a.wait_connected(10), b.wait_connected(10))
    assert len(tracks_a) == 1 and len(tracks_b) == 1
    tb = tracks_b[0]
    assert tb.current_direction == "sendrecv" and ta.current_direction == "sendrecv"
    got_a, got_b = collect(ta), collect(tb)
    pt = ta.codecs[0].payload_type
    assert pt is not None
    ta.sender.send_rtp(ta.sender.build_packet(b"from-a", payload_type=pt, sequence_number=1, timestamp=1))
    tb.sender.send_rtp(tb.sender.build_packet(b"from-b", payload_type=pt, sequence_number=1, timestamp=1))
    await wait_for(lambda: bool(got_a) and bool(got_b))
    assert got_b[0][0].endswith(b"from-a") and got_a[0][0].endswith(b"from-b")
    assert got_a[0][1].ssrc == tb.sender.ssrc


async def test_data_channels_both_ways(make_pc: MakePc) -> None:
    a, b = make_pc(), make_pc()
    reliable = a.create_data_channel("_reliable")
    lossy = a.create_data_channel("_lossy", max_retransmits=0)
    remote: dict[str, list[bytes | str]] = {}
    remote_channels = {}

    def on_channel(channel):  # type: ignore[no-untyped-def]
        remote_channels[channel.label] = channel
        messages = remote.setdefault(channel.label, [])
        channel.on_message = messages.append

    b.on_data_channel = on_channel
    opened: list[str] = []
    reliable.on_open = lambda: opened.append("reliable")
    back: list[bytes | str] = []
    reliable.on_message = back.append
    await negotiate(a, b)
    await wait_for(lambda: reliable.ready_state == "open" and lossy.ready_state == "open")
    assert opened == ["reliable"]
    reliable.send(b"\x00\x01binary")
    reliable.send("text")
    lossy.send(b"x" * 1000)
    await wait_for(lambda: len(remote.get("_reliable", [])) == 2 and len(remote.get("_lossy", [])) == 1)
    assert remote["_reliable"] == [b"\x00\x01binary", "text"]
    assert remote_channels["_lossy"].max_retransmits == 0
    assert remote_channels["_lossy"].ordered and remote_channels["_reliable"].max_retransmits is None
    remote_channels["_reliable"].send(b"reply")
    await wait_for(lambda: back == [b"reply"])
    with pytest.raises(ValueError):
        reliable.send(12345)  # type: ignore[arg-type]


async def test_feedback_reaches_the_sender(make_pc: MakePc) -> None:
    _offerer, _answerer, sending, tracks = await connected_pair(make_pc)
    receiver = tracks[0].receiver
    nacks: list[tuple[int, list[int]]] = []
    keyframes: list[int] = []
    rembs: list[tuple[int, list[int]]] = []
    reports: list[tuple[ReportBlock, float | None]] = []
    sender = sending.sender
    sender.on_nack = lambda ssrc, lost: nacks.append((ssrc, lost))
    sender.on_keyframe_request = keyframes.append
    sender.on_remb = lambda bitrate, ssrcs: rembs.append((bitrate, ssrcs))
    sender.on_receiver_report = lambda block, rtt: reports.append((block, rtt))
    ssrc = sender.ssrc
    receiver.send_nack(ssrc, [10, 11, 13, 40])
    receiver.request_keyframe(ssrc)
    receiver.send_fir(ssrc)
    receiver.send_remb(1_500_000, [ssrc])
    receiver.send_rtcp(build_receiver_report(1234, [ReportBlock(ssrc, 25, 7, 100, 3, 0, 0)]))
    # feedback about an SSRC nobody sends must not reach this sender
    receiver.request_keyframe(ssrc ^ 1)
    await wait_for(lambda: len(nacks) == 1 and len(keyframes) == 2 and bool(rembs) and bool(reports))
    assert nacks == [(ssrc, [10, 11, 13, 40])]
    assert keyframes == [ssrc, ssrc]
    assert rembs[0][1] == [ssrc] and abs(rembs[0][0] - 1_500_000) <= 1_500_000 >> 17
    block, rtt = reports[0]
    assert (block.fraction_lost, block.packets_lost, block.highest_sequence) == (25, 7, 100)
    assert rtt is None  # no SR referenced


async def test_automatic_reports_give_rtt_and_sender_reports(make_pc: MakePc) -> None:
    offerer, answerer = make_pc(rtcp_report_interval=0.1), make_pc(rtcp_report_interval=0.1)
    sending = offerer.add_transceiver("video", "sendonly")
    tracks: list[Transceiver] = []
    answerer.on_track = tracks.append
    await negotiate(offerer, answerer)
    await asyncio.gather(offerer.wait_connected(10), answerer.wait_connected(10))
    srs: list[SenderReport] = []
    tracks[0].receiver.on_sender_report = srs.append
    reports: list[tuple[ReportBlock, float | None]] = []
    sending.sender.on_receiver_report = lambda b, rtt: reports.append((b, rtt))
    pt = sending.codecs[0].payload_type
    assert pt is not None
    for seq in range(20):
        if seq in (5, 6):
            continue  # two lost packets
        sending.sender.send_rtp(
            sending.sender.build_packet(b"p" * 50, payload_type=pt, sequence_number=seq, timestamp=seq * 3000)
        )
    await wait_for(lambda: any(rtt is not None for _, rtt in reports))
    assert srs and srs[-1].ssrc == sending.sender.ssrc and srs[-1].packet_count == 18
    block, rtt = next((b, r) for b, r in reports if r is not None)
    assert block.ssrc == sending.sender.ssrc
    assert block.highest_sequence == 19 and block.packets_lost == 2
    assert rtt is not None and 0 <= rtt < 1.0
    (out,) = offerer.get_stats().outbound
    assert (out.ssrc, out.packets_sent, out.payload_bytes_sent) == (sending.sender.ssrc, 18, 18 * 50)
    assert out.round_trip_time is not None and out.packets_lost == 2 and out.mid == sending.mid
    stats = answerer.get_stats()
    (inbound,) = stats.inbound
    assert (inbound.ssrc, inbound.packets_received, inbound.packets_lost) == (sending.sender.ssrc, 18, 2)
    assert inbound.highest_sequence == 19 and inbound.jitter_seconds >= 0
    assert stats.connection_state == "connected" and stats.malformed_rtp == 0


async def test_transport_cc_feedback_is_generated(make_pc: MakePc) -> None:
    _offerer, _answerer, sending, _tracks = await connected_pair(make_pc)
    feedback: list[TransportCcFeedback] = []
    sending.sender.on_transport_cc = feedback.append
    pt = sending.codecs[0].payload_type
    assert pt is not None
    for i in range(30):
        if i == 12:
            continue
        sending.sender.send_rtp(
            sending.sender.build_packet(
                b"z" * 100,
                payload_type=pt,
                sequence_number=i,
                timestamp=i,
                extensions={URI_TRANSPORT_CC: encode_transport_cc(1000 + i)},
            )
        )
        await asyncio.sleep(0.002)
    await wait_for(lambda: sum(len(f.packets) for f in feedback) >= 30)
    reported = {seq: arrival for f in feedback for seq, arrival in f.packets}
    assert set(range(1000, 1030)) <= set(reported)
    assert reported[1012] is None
    assert all(reported[s] is not None for s in range(1000, 1030) if s != 1012)
    arrivals = [reported[s] for s in range(1000, 1012)]
    assert arrivals == sorted(arrivals)  # type: ignore[type-var]


async def test_simulcast_rids_are_demuxed(make_pc: MakePc) -> None:
    offerer, answerer = make_pc(), make_pc()
    encodings = [SendEncoding("q", 1111), SendEncoding("h", 2222), SendEncoding("f", 3333)]
    sending = offerer.add_transceiver("video", "sendonly", send_encodings=encodings)
    tracks: list[Transceiver] = []
    answerer.on_track = tracks.append
    offer = await offerer.create_offer()
    assert "a=simulcast:send q;h;f" in offer and "a=rid:h send" in offer
    assert "a=ssrc:1111" not in offer
    await answerer.set_remote_description(offer, "offer")
    answer = await answerer.create_answer()
    assert "a=simulcast:recv q;h;f" in answer and "a=rid:f recv" in answer
    await offerer.set_remote_description(answer, "answer")
    await asyncio.gather(offerer.wait_connected(10), answerer.wait_connected(10))
    assert tracks[0].receiver.rids == ["q", "h", "f"]
    received = collect(tracks[0])
    pt = sending.codecs[0].payload_type
    assert pt is not None
    # First packet of each layer carries the rid; later ones only the SSRC.
    for seq in range(3):
        for rid in ("q", "h", "f"):
            if seq == 0:
                packet = sending.sender.build_packet(
                    b"L" + rid.encode(), payload_type=pt, sequence_number=seq, timestamp=0, rid=rid
                )
            else:
                packet = sending.sender.build_packet(
                    b"L" + rid.encode(),
                    payload_type=pt,
                    sequence_number=seq,
                    timestamp=0,
                    ssrc=sending.sender.ssrc_for_rid(rid),
                )
            sending.sender.send_rtp(packet)
    await wait_for(lambda: len(received) == 9)
    for data, header in received:
        assert header.rid is not None
        assert data[header.payload_offset :] == b"L" + header.rid.encode()
        assert header.ssrc == {"q": 1111, "h": 2222, "f": 3333}[header.rid]
    assert tracks[0].receiver.ssrcs == {1111: "q", 2222: "h", 3333: "f"}
    assert URI_RID in tracks[0].header_extensions


async def test_renegotiation_adds_and_removes_m_lines(make_pc: MakePc) -> None:
    offerer, answerer, first, tracks = await connected_pair(make_pc)
    second = offerer.add_transceiver("video", "sendonly")
    audio = offerer.add_transceiver("audio", "sendonly")
    await negotiate(offerer, answerer)
    assert len(tracks) == 3
    assert [t.kind for t in tracks] == ["video", "video", "audio"]
    assert len({t.mid for t in tracks}) == 3
    got = collect(tracks[1])
    opus = next(c for c in audio.codecs if c.name == "opus")
    assert opus.clock_rate == 48000 and opus.channels == 2
    send_one(second, b"second", 1)
    await wait_for(lambda: len(got) == 1)
    assert got[0][1].ssrc == second.sender.ssrc
    # Remove the first m-line: port 0 in the next offer, the answerer stops it.
    first.stop()
    offer = await offerer.create_offer()
    assert "m=video 0 " in offer
    await answerer.set_remote_description(offer, "offer")
    answer = await answerer.create_answer()
    await offerer.set_remote_description(answer, "answer")
    assert tracks[0].stopped and not tracks[1].stopped
    # The answerer, now offering, adds an m-line the old offerer receives.
    back_tracks: list[Transceiver] = []
    offerer.on_track = back_tracks.append
    reverse = answerer.add_transceiver("video", "sendonly")
    await negotiate(answerer, offerer)
    assert len(back_tracks) == 1 and back_tracks[0].mid == reverse.mid
    got_back = collect(back_tracks[0])
    send_one(reverse, b"reverse", 1)
    await wait_for(lambda: len(got_back) == 1)
    assert offerer.connection_state == answerer.connection_state == "connected"


async def test_trickle_candidates_connect_without_sdp_candidates(make_pc: MakePc) -> None:
    a, b = make_pc(), make_pc()
    a.add_transceiver("video", "sendonly")
    a_candidates: list[IceCandidateInit | None] = []
    b_candidates: list[IceCandidateInit | None] = []
    a.on_ice_candidate = a_candidates.append
    b.on_ice_candidate = b_candidates.append

    def strip(sdp: str) -> str:
        return "".join(line + "\r\n" for line in sdp.splitlines() if not line.startswith("a=candidate"))

    offer = await a.create_offer()
    await b.set_remote_description(strip(offer), "offer")
    answer = await b.create_answer()
    await a.set_remote_description(strip(answer), "answer")
    await wait_for(lambda: None in a_candidates and None in b_candidates)
    for c in a_candidates:
        assert c is None or (c.candidate.startswith("candidate:") and " 127.0.0.1 " in c.candidate)
        await b.add_ice_candidate(None if c is None else IceCandidateInit.from_json(c.to_json()))
    for c in b_candidates:
        await a.add_ice_candidate(c)
    await asyncio.gather(a.wait_connected(10), b.wait_connected(10))


async def test_loopback_only_gathers_only_127_0_0_1(make_pc: MakePc) -> None:
    pc = make_pc()
    pc.add_transceiver("audio", "recvonly")
    offer = await pc.create_offer()
    candidates = [line for line in offer.splitlines() if line.startswith("a=candidate:")]
    assert len(candidates) == 1 and " 127.0.0.1 " in candidates[0] and "typ host" in candidates[0]


async def test_bad_input_is_rejected_cleanly(make_pc: MakePc) -> None:
    pc = make_pc()
    with pytest.raises(ValueError, match="kind"):
        pc.add_transceiver("text", "sendonly")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction"):
        pc.add_transceiver("video", "both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rids"):
        pc.add_transceiver("video", send_encodings=[SendEncoding("q", 1), SendEncoding("q", 2)])
    with pytest.raises(ValueError, match="v=0"):
        await pc.set_remote_description("hello", "offer")
    with pytest.raises(ValueError, match="ice-ufrag"):
        await pc.set_remote_description("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n", "offer")
    with pytest.raises(ValueError, match="offer"):
        await pc.create_answer()
    with pytest.raises(ValueError, match="type"):
        await pc.set_remote_description("v=0\r\n", "pranswer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="candidate"):
        await pc.add_ice_candidate(IceCandidateInit("candidate:garbage"))


async def test_malformed_network_packets_are_counted_not_raised(make_pc: MakePc) -> None:
    offerer, answerer, sending, tracks = await connected_pair(make_pc)
    got = collect(tracks[0])
    # Bypass send_rtp's length check to put garbage on the wire, SRTP-protected.
    # RTP whose padding count exceeds the packet (libsrtp does not check it).
    assert offerer._transport.send(bytes([0xA0, 96]) + b"\x00" * 10 + b"\x01\xff", False)
    assert offerer._transport.send(bytes([0x81, 200, 0, 40]) + b"\x00" * 8, True)  # length overruns
    send_one(sending, b"ok", 7)
    await wait_for(lambda: any(h.sequence_number == 7 for _, h in got))
    await wait_for(lambda: answerer.malformed_rtp >= 1 and answerer.malformed_rtcp >= 1)
    assert answerer.connection_state == "connected"


async def test_close_is_idempotent_and_stops_sending(make_pc: MakePc) -> None:
    offerer, answerer, sending, _tracks = await connected_pair(make_pc)
    states: list[str] = []
    offerer.on_connection_state_change = states.append
    await offerer.close()
    await offerer.close()
    assert offerer.connection_state == "closed" and states == ["closed"]
    sending.sender.send_rtp(b"\x80" + b"\x00" * 20)
    assert sending.sender.packets_dropped == 1
    with pytest.raises(ConnectionError):
        await offerer.create_offer()
    # the remote notices the DTLS shutdown
    await wait_for(lambda: answerer.connection_state in ("failed", "closed"))
    await answerer.close()
    assert not [t for t in asyncio.all_tasks() if "PeerConnection" in repr(t) and not t.done()]


async def test_remb_without_matching_ssrc_goes_to_all_senders(make_pc: MakePc) -> None:
    _offerer, _answerer, sending, tracks = await connected_pair(make_pc)
    rembs: list[int] = []
    sending.sender.on_remb = lambda bitrate, ssrcs: rembs.append(bitrate)
    tracks[0].receiver.send_rtcp(build_remb(1, 300_000, []))
    await wait_for(lambda: rembs == [300_000])


async def test_no_stun_server_unless_configured() -> None:
    from kitewire.transport import IceServer, PeerConnectionConfig

    plain = PeerConnection(PeerConnectionConfig())
    configured = PeerConnection(PeerConnectionConfig(ice_servers=[IceServer(urls=["stun:127.0.0.1:3478"])]))
    try:
        assert plain._transport.ice_connection.stun_server is None
        assert plain._transport.ice_connection.turn_server is None
        assert configured._transport.ice_connection.stun_server == ("127.0.0.1", 3478)
    finally:
        await plain.close()
        await configured.close()
    with pytest.raises(ValueError, match="IceServer"):
        PeerConnection(PeerConnectionConfig(ice_servers=["stun:x"]))  # type: ignore[list-item]


async def test_forged_srtp_is_counted_and_dropped(make_pc: MakePc) -> None:
    offerer, answerer, sending, tracks = await connected_pair(make_pc)
    got = collect(tracks[0])
    pair = offerer._transport.ice_connection._nominated[1]
    # Plain RTP that was never SRTP-protected fails authentication.
    pair.protocol.transport.sendto(b"\x80\x60\x00\x01" + b"\x00" * 40, pair.remote_addr)
    send_one(sending, b"ok", 9)
    await wait_for(lambda: len(got) == 1 and answerer.srtp_errors == 1)
    assert answerer.connection_state == "connected"


async def test_duplicate_mids_and_candidate_floods_are_refused(make_pc: MakePc) -> None:
    a, b = make_pc(), make_pc()
    a.add_transceiver("video", "sendonly")
    a.add_transceiver("video", "sendonly")
    offer = await a.create_offer()
    with pytest.raises(ValueError, match="unique a=mid"):
        await b.set_remote_description(offer.replace("a=mid:1", "a=mid:0"), "offer")
    await b.set_remote_description(offer, "offer")
    refused = 0
    for port in range(1000, 1200):
        try:
            await b.add_ice_candidate(IceCandidateInit(f"candidate:{port} 1 udp 2130706431 127.0.0.1 {port} typ host"))
        except ValueError as exc:
            assert "at most 64 remote candidates" in str(exc)
            refused += 1
    assert len(b._transport.ice_connection.remote_candidates) <= 64
    assert refused >= 200 - 64


async def test_rejected_m_lines_are_recycled(make_pc: MakePc) -> None:
    offerer, answerer, first, tracks = await connected_pair(make_pc)
    first.stop()
    await negotiate(offerer, answerer)
    assert tracks[0].stopped
    second = offerer.add_transceiver("video", "sendonly")
    offer = await offerer.create_offer()
    assert offer.count("m=video") == 1  # the dead m-line carries the new track
    assert second.mid is not None and second.mid != first.mid
    await answerer.set_remote_description(offer, "offer")
    await offerer.set_remote_description(await answerer.create_answer(), "answer")
    assert len(offerer.transceivers) == 1 and len(answerer.transceivers) == 1
    assert len(tracks) == 2 and tracks[1].mid == second.mid
    got = collect(tracks[1])
    send_one(second, b"recycled", 1)
    await wait_for(lambda: len(got) == 1)
    # mids are never reused, even after recycling
    second.stop()
    await negotiate(offerer, answerer)
    third = offerer.add_transceiver("video", "sendonly")
    await negotiate(offerer, answerer)
    assert third.mid not in (first.mid, second.mid)


async def test_unknown_remote_m_lines_keep_their_place(make_pc: MakePc) -> None:
    a, b = make_pc(), make_pc()
    a.add_transceiver("video", "sendonly")
    offer = await a.create_offer()
    # Append an m-line of a kind we do not handle.
    text_section = (
        "m=text 9 UDP/TLS/RTP/SAVPF 98\r\nc=IN IP4 0.0.0.0\r\na=mid:t1\r\na=sendrecv\r\na=rtpmap:98 t140/1000\r\n"
    )
    await b.set_remote_description(offer + text_section, "offer")
    answer = await b.create_answer()
    assert "m=text 0 " in answer
    # b's next offer still has both m-lines in the same order, the text one rejected
    offer2 = await b.create_offer()
    kinds = [line.split()[0] for line in offer2.splitlines() if line.startswith("m=")]
    assert kinds == ["m=video", "m=text"]
    assert "m=text 0 " in offer2


async def test_close_while_connecting_leaves_nothing_running(make_pc: MakePc) -> None:
    a, b = make_pc(), make_pc()
    a.add_transceiver("video", "sendonly")
    states: list[str] = []
    a.on_connection_state_change = states.append
    await negotiate(a, b)
    await a.close()
    await b.close()
    assert states[0] == "connecting" and states[-1] == "closed"
    with pytest.raises(ConnectionError):
        await a.wait_connected(1)
    await asyncio.sleep(0.05)
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert leftovers == [], leftovers


async def test_signaling_states(make_pc: MakePc) -> None:
    a, b = make_pc(), make_pc()
    a.add_transceiver("audio", "sendonly")
    assert a.signaling_state == "stable"
    offer = await a.create_offer()
    assert str(a.signaling_state) == "have-local-offer"
    with pytest.raises(ValueError, match="glare"):
        await a.set_remote_description(offer, "offer")
    await b.set_remote_description(offer, "offer")
    assert b.signaling_state == "have-remote-offer"
    with pytest.raises(ValueError, match="have-remote-offer"):
        await b.create_offer()
    answer = await b.create_answer()
    assert str(b.signaling_state) == "stable"
    await a.set_remote_description(answer, "answer")
    assert a.signaling_state == "stable"
    with pytest.raises(ValueError, match="local offer"):
        await a.set_remote_description(answer, "answer")
    await a.close()
    assert str(a.signaling_state) == "closed"


async def test_data_channel_added_by_renegotiation(make_pc: MakePc) -> None:
    offerer, answerer, _sending, _tracks = await connected_pair(make_pc)
    remote: list[bytes | str] = []
    answerer.on_data_channel = lambda channel: setattr(channel, "on_message", remote.append)
    channel = offerer.create_data_channel("_reliable")
    await negotiate(offerer, answerer)
    await wait_for(lambda: channel.ready_state == "open")
    channel.send(b"late")
    await wait_for(lambda: remote == [b"late"])
    # and the answerer can add one of its own on the same association
    back = answerer.create_data_channel("_lossy", max_retransmits=0)
    got: list[bytes | str] = []
    offerer.on_data_channel = lambda c: setattr(c, "on_message", got.append)
    await wait_for(lambda: back.ready_state == "open")
    back.send("reverse")
    await wait_for(lambda: got == ["reverse"])


async def test_random_network_bytes_never_raise(make_pc: MakePc) -> None:
    import random

    _offerer, answerer, _sending, tracks = await connected_pair(make_pc)
    tracks[0].receiver.on_rtp = lambda data, header: None
    rng = random.Random(7)
    for _ in range(3000):
        size = rng.randrange(0, 80)
        data = bytes([0x80 | rng.randrange(0, 64)]) + bytes(rng.randrange(256) for _ in range(size))
        answerer._router.on_rtp(data)
        answerer._router.on_rtcp(data)
        answerer._transport._on_datagram(data + b"\x00")
    assert answerer.malformed_rtp + answerer.unroutable_rtp > 0
    assert answerer.malformed_rtcp > 0 and answerer.srtp_errors > 0
    assert answerer.connection_state == "connected"


async def test_many_connections_release_their_sockets() -> None:
    import os

    from kitewire.transport import PeerConnectionConfig

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    pairs: list[tuple[PeerConnection, PeerConnection]] = []
    try:
        for _ in range(8):
            a = PeerConnection(PeerConnectionConfig(loopback_only=True))
            b = PeerConnection(PeerConnectionConfig(loopback_only=True))
            pairs.append((a, b))
            a.add_transceiver("video", "sendonly")
            a.create_data_channel("_reliable")
        await asyncio.gather(*(negotiate(a, b) for a, b in pairs))
        await asyncio.gather(*(pc.wait_connected(15) for pair in pairs for pc in pair))
        assert open_fds() >= before + 16
    finally:
        await asyncio.gather(*(pc.close() for pair in pairs for pc in pair))
    await asyncio.sleep(0.1)
    assert open_fds() <= before
