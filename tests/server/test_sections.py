"""Single-PC media-section bookkeeping on a real PeerConnection's transceivers (no network: nothing connects)."""

from __future__ import annotations

from dataclasses import dataclass

from kitewire.server.downtrack import DownTrack
from kitewire.server.sections import MediaSections
from kitewire.server.uptrack import PublishedTrack
from kitewire.transport import PeerConnection, PeerConnectionConfig, Transceiver
from kitewire.transport.sdp import parse_sdp
from livekit.protocol import models as pb_models


@dataclass
class _Publisher:
    """The part of a participant a published track's identity needs here."""

    sid: str
    identity: str


def _offer(sections: list[tuple[str, str]]) -> str:
    """A bundled client offer with one m-line per (kind, direction)."""
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    lines += ["a=group:BUNDLE " + " ".join(str(i) for i in range(len(sections)))]
    lines += ["a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuvwx", "a=setup:actpass"]
    lines += ["a=fingerprint:sha-256 " + ":".join(["AB"] * 32)]
    for mid, (kind, direction) in enumerate(sections):
        codec = "96 VP8/90000" if kind == "video" else "111 opus/48000/2"
        lines += [f"m={kind} 9 UDP/TLS/RTP/SAVPF {codec.split()[0]}", "c=IN IP4 0.0.0.0", f"a=mid:{mid}"]
        lines += [f"a={direction}", "a=rtcp-mux", f"a=rtpmap:{codec}"]
    return "\r\n".join(lines) + "\r\n"


def _downtrack(kind: str, number: int) -> DownTrack:
    info = pb_models.TrackInfo(sid=f"TR_{kind}{number}", type=pb_models.AUDIO if kind == "audio" else pb_models.VIDEO)
    track = PublishedTrack(_Publisher("PA_pub", "pub"), info, None)  # type: ignore[arg-type]
    return DownTrack(track, _Publisher("PA_sub", "sub"), None, is_ready=lambda _: False)  # type: ignore[arg-type]


async def _client_offers(pc: PeerConnection, sections: MediaSections, sdp: str) -> list[Transceiver]:
    await pc.set_remote_description(sdp, "offer")
    sections.offer_received(parse_sdp(sdp))
    return pc.transceivers


async def test_waiting_downtracks_take_free_recvonly_lines_of_their_kind() -> None:
    pc = PeerConnection(PeerConnectionConfig(loopback_only=True))
    sections = MediaSections()
    try:
        offered = [("video", "recvonly"), ("video", "recvonly"), ("audio", "recvonly"), ("video", "sendonly")]
        transceivers = await _client_offers(pc, sections, _offer(offered))
        free = sections.free(transceivers, set())
        assert [t.mid for t in free] == ["0", "1", "2"], "a line the client sends on is not free"
        videos = [_downtrack("video", n) for n in range(3)]
        audios = [_downtrack("audio", n) for n in range(2)]
        sections.waiting.extend(videos + audios)
        sections.bind_waiting(free)
        assert [d.transceiver.mid if d.transceiver else None for d in videos + audios] == ["0", "1", None, "2", None]
        assert sections.waiting == [videos[2], audios[1]] and sections.offer_needed
        assert sections.wanted(free) == {"audio": 1, "video": 1}
        bound = videos[0].transceiver
        assert bound is not None and bound.direction == "sendonly" and bound.track_id == "TR_video0"
        assert bound.stream_id == "PA_pub|TR_video0"
    finally:
        await pc.close()


async def test_a_released_line_goes_inactive_and_is_never_handed_out_again() -> None:
    pc = PeerConnection(PeerConnectionConfig(loopback_only=True))
    sections = MediaSections()
    try:
        sdp = _offer([("video", "recvonly")])
        transceivers = await _client_offers(pc, sections, sdp)
        first = _downtrack("video", 1)
        sections.waiting.append(first)
        sections.bind_waiting(sections.free(transceivers, set()))
        assert first.transceiver is not None and not sections.offer_needed
        sections.release(first)
        assert first.transceiver.stopped and sections.offer_needed, "a client offer is owed"
        await pc.create_answer()
        transceivers = await _client_offers(pc, sections, sdp)
        assert not sections.offer_needed, "the new offer's answer settles the released line"
        second = _downtrack("video", 2)
        sections.waiting.append(second)
        sections.bind_waiting(sections.free(transceivers, set()))
        assert second.transceiver is None and sections.wanted([]) == {"audio": 0, "video": 1}
    finally:
        await pc.close()


def test_releasing_a_waiting_downtrack_forgets_it() -> None:
    sections = MediaSections()
    down = _downtrack("audio", 1)
    sections.waiting.append(down)
    sections.release(down)
    assert not sections.waiting and not sections.offer_needed
