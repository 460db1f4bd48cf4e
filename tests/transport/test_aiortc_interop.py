"""Our PeerConnection against aiortc's own RTCPeerConnection, a real independent peer.

aiortc is made to gather 127.0.0.1 only and to use no STUN server.
"""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import AsyncIterator, Callable

import av
import numpy as np
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.codecs.vpx import Vp8Encoder
from kitewire.transport import PeerConnection, RtpHeader, Transceiver
from kitewire.transport.rtcp import ReportBlock
from transport_helpers import wait_for

MakePc = Callable[..., PeerConnection]


def record_incoming_rtp(pc: PeerConnection) -> tuple[list[Transceiver], list[RtpHeader]]:
    """The transceivers of the tracks ``pc`` receives, and the header of every RTP packet on them, as they come."""
    tracks: list[Transceiver] = []
    received: list[RtpHeader] = []

    def on_track(transceiver: Transceiver) -> None:
        tracks.append(transceiver)
        transceiver.receiver.on_rtp = lambda data, header: received.append(header)

    pc.on_track = on_track
    return tracks, received


@pytest.fixture
async def their_pc(aiortc_loopback: None) -> AsyncIterator[RTCPeerConnection]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    yield pc
    await pc.close()


async def test_aiortc_sends_video_we_receive_rtp(make_pc: MakePc, their_pc: RTCPeerConnection) -> None:
    their_pc.addTrack(VideoStreamTrack())
    ours = make_pc()
    tracks, received = record_incoming_rtp(ours)
    await their_pc.setLocalDescription(await their_pc.createOffer())
    offer = their_pc.localDescription.sdp
    await ours.set_remote_description(offer, "offer")
    answer = await ours.create_answer()
    assert "rtx" not in answer.lower()  # retransmissions must come on the media SSRC
    await their_pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await ours.wait_connected(10)
    await wait_for(lambda: len(received) >= 20)
    transceiver = tracks[0]
    vp8_pt = next(c.payload_type for c in transceiver.codecs if c.name == "VP8")
    # aiortc's first codec is VP8: its payload type and its announced SSRC must match.
    their_ssrc = their_pc.getSenders()[0]._ssrc
    assert {h.payload_type for h in received} == {vp8_pt}
    assert {h.ssrc for h in received} == {their_ssrc}
    assert transceiver.remote_track_id == their_pc.getSenders()[0].track.id
    # sequence numbers are consecutive (loopback, no loss)
    seqs = [h.sequence_number for h in received[:20]]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))


async def test_we_offer_aiortc_answers_and_decodes_our_vp8(make_pc: MakePc, their_pc: RTCPeerConnection) -> None:
    ours = make_pc(rtcp_report_interval=0.2)
    sending = ours.add_transceiver("video", "sendonly")
    their_tracks: list[MediaStreamTrack] = []
    their_pc.on("track", their_tracks.append)
    reports: list[tuple[ReportBlock, float | None]] = []
    sending.sender.on_receiver_report = lambda block, rtt: reports.append((block, rtt))
    await their_pc.setRemoteDescription(RTCSessionDescription(await ours.create_offer(), "offer"))
    await their_pc.setLocalDescription(await their_pc.createAnswer())
    await ours.set_remote_description(their_pc.localDescription.sdp, "answer")
    await ours.wait_connected(10)
    vp8_pt = next(c.payload_type for c in sending.codecs if c.name == "VP8")
    assert vp8_pt is not None
    encoder = Vp8Encoder()
    seq = 0

    async def send_frames() -> None:
        nonlocal seq
        for i in range(30):
            image = np.zeros((240, 320, 3), np.uint8)
            image[:, :, 1] = 200  # green
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i * 3000
            frame.time_base = fractions.Fraction(1, 90000)
            payloads, timestamp = encoder.encode(frame, force_keyframe=i == 0)
            for j, payload in enumerate(payloads):
                sending.sender.send_rtp(
                    sending.sender.build_packet(
                        payload,
                        payload_type=vp8_pt,
                        sequence_number=seq,
                        timestamp=timestamp,
                        marker=j == len(payloads) - 1,
                    )
                )
                seq += 1
            await asyncio.sleep(0.03)

    task = asyncio.ensure_future(send_frames())
    try:
        await wait_for(lambda: bool(their_tracks))
        decoded = await asyncio.wait_for(their_tracks[0].recv(), 10)
        assert isinstance(decoded, av.VideoFrame)
        assert (decoded.width, decoded.height) == (320, 240)
        rgb = decoded.to_ndarray(format="rgb24")
        assert rgb[:, :, 1].mean() > 150 and rgb[:, :, 0].mean() < 60
        await task
        await wait_for(lambda: any(rtt is not None for _, rtt in reports))
    finally:
        task.cancel()
    block = reports[-1][0]
    assert block.ssrc == sending.sender.ssrc and block.packets_lost == 0


async def test_data_channels_with_aiortc_both_directions(make_pc: MakePc, their_pc: RTCPeerConnection) -> None:
    ours = make_pc()
    ours_channel = ours.create_data_channel("_reliable")
    their_channels: list[RTCDataChannel] = []
    their_messages: list[bytes | str] = []

    def on_datachannel(channel: RTCDataChannel) -> None:
        their_channels.append(channel)
        channel.on("message", their_messages.append)

    their_pc.on("datachannel", on_datachannel)
    await their_pc.setRemoteDescription(RTCSessionDescription(await ours.create_offer(), "offer"))
    await their_pc.setLocalDescription(await their_pc.createAnswer())
    await ours.set_remote_description(their_pc.localDescription.sdp, "answer")
    await wait_for(lambda: ours_channel.ready_state == "open")
    ours_channel.send(b"to-aiortc")
    await wait_for(lambda: their_messages == [b"to-aiortc"])
    assert their_channels[0].label == "_reliable"
    back: list[bytes | str] = []
    ours_channel.on_message = back.append
    their_channels[0].send("to-kitewire")
    await wait_for(lambda: back == ["to-kitewire"])


async def test_aiortc_created_channel_reaches_us(make_pc: MakePc, their_pc: RTCPeerConnection) -> None:
    their_channel = their_pc.createDataChannel("_lossy", ordered=True, maxRetransmits=0)
    ours = make_pc()
    ours_channels = []
    received: list[bytes | str] = []

    def on_channel(channel):  # type: ignore[no-untyped-def]
        ours_channels.append(channel)
        channel.on_message = received.append

    ours.on_data_channel = on_channel
    await their_pc.setLocalDescription(await their_pc.createOffer())
    await ours.set_remote_description(their_pc.localDescription.sdp, "offer")
    await their_pc.setRemoteDescription(RTCSessionDescription(await ours.create_answer(), "answer"))
    await wait_for(lambda: their_channel.readyState == "open")
    their_channel.send(b"hello")
    await wait_for(lambda: received == [b"hello"])
    assert ours_channels[0].label == "_lossy" and ours_channels[0].max_retransmits == 0


async def test_h264_only_answer_gets_h264_from_aiortc(make_pc: MakePc, their_pc: RTCPeerConnection) -> None:
    from kitewire.transport import DEFAULT_CODECS

    their_pc.addTrack(VideoStreamTrack())
    h264_only = [c for c in DEFAULT_CODECS if c.name == "H264"]
    ours = make_pc(codecs=h264_only)
    tracks, received = record_incoming_rtp(ours)
    await their_pc.setLocalDescription(await their_pc.createOffer())
    await ours.set_remote_description(their_pc.localDescription.sdp, "offer")
    answer = await ours.create_answer()
    assert "VP8" not in answer
    await their_pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await wait_for(lambda: len(received) >= 10)
    codecs = tracks[0].codecs
    # aiortc offers two packetization-mode=1 H264 profiles (42001f, 42e01f): both accepted
    assert [c.name for c in codecs] == ["H264", "H264"]
    assert {"profile-level-id=42001f" in c.fmtp or "profile-level-id=42e01f" in c.fmtp for c in codecs} == {True}
    assert {h.payload_type for h in received} <= {c.payload_type for c in codecs}
    first = received[0]
    assert first.payload_type == codecs[0].payload_type
