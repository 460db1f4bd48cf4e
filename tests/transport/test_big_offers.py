"""Bounded work per remote description: limits on m-lines, per-m-line lists and
ICE candidates, refused with a ValueError naming the limit; big descriptions
that are allowed leave the event loop free to run other tasks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest
from kitewire.transport import IceCandidateInit, PeerConnection
from kitewire.transport.ice import MAX_REMOTE_CANDIDATES
from kitewire.transport.sdp import (
    MAX_CODECS_PER_SECTION,
    MAX_MEDIA_SECTIONS,
    MAX_RIDS_PER_SECTION,
    MAX_SSRCS_PER_SECTION,
    parse_sdp,
)

MakePc = Callable[..., PeerConnection]

_FINGERPRINT = "a=fingerprint:sha-256 " + ":".join(["AB"] * 32)


def offer_with(sections: list[list[str]], *, candidates: list[str] | None = None) -> str:
    """A bundled offer whose m-lines carry ``sections`` (each: the m= line and its attributes)."""
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    lines += ["a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuvwx", _FINGERPRINT, "a=setup:actpass"]
    for index, section in enumerate(sections):
        lines += section
        if index == 0 and candidates:
            lines += [f"a=candidate:{c}" for c in candidates]
    return "\r\n".join(lines) + "\r\n"


def video_section(mid: str, direction: str = "recvonly", extra: list[str] | None = None) -> list[str]:
    return ["m=video 9 UDP/TLS/RTP/SAVPF 96", f"a=mid:{mid}", f"a={direction}", "a=rtcp-mux"] + (
        extra if extra is not None else ["a=rtpmap:96 VP8/90000"]
    )


def audio_section(mid: str, direction: str = "recvonly") -> list[str]:
    return ["m=audio 9 UDP/TLS/RTP/SAVPF 111", f"a=mid:{mid}", f"a={direction}", "a=rtpmap:111 opus/48000/2"]


def minimal_offer(count: int) -> str:
    return offer_with([video_section(str(i)) for i in range(count)])


async def test_an_offer_over_the_m_line_limit_is_refused_before_it_is_parsed(make_pc: MakePc) -> None:
    pc = make_pc()
    huge = minimal_offer(7000)
    started = time.perf_counter()
    with pytest.raises(ValueError, match=f"at most {MAX_MEDIA_SECTIONS} m-lines per description expected, got 7000"):
        await pc.set_remote_description(huge, "offer")
    elapsed = time.perf_counter() - started
    # Benchmark line (not asserted): before the limit this offer took ~0.9 s of event-loop time here.
    print(f"\n7000-m-line offer ({len(huge) // 1000} kB) refused in {elapsed * 1000:.2f} ms")
    assert pc.transceivers == [] and pc.remote_description is None
    with pytest.raises(ValueError, match=f"got {MAX_MEDIA_SECTIONS + 1}"):
        await pc.set_remote_description(minimal_offer(MAX_MEDIA_SECTIONS + 1), "offer")
    # The connection object is untouched and takes a normal offer afterwards.
    await pc.set_remote_description(minimal_offer(2), "offer")
    assert len(parse_sdp(await pc.create_answer()).media) == 2


async def test_an_offer_at_the_limit_is_answered_while_other_tasks_keep_running(make_pc: MakePc) -> None:
    pc = make_pc()
    offer = minimal_offer(MAX_MEDIA_SECTIONS)
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0)
    ticks = 0
    started = time.perf_counter()
    await pc.set_remote_description(offer, "offer")
    answer = parse_sdp(await pc.create_answer())
    elapsed = time.perf_counter() - started
    done = True
    await task
    print(f"\n{MAX_MEDIA_SECTIONS}-m-line offer applied and answered in {elapsed * 1000:.1f} ms; ticker ran {ticks}x")
    assert [m.mid for m in answer.media] == [str(i) for i in range(MAX_MEDIA_SECTIONS)]
    assert all(m.port != 0 for m in answer.media)
    assert answer.bundle == [str(i) for i in range(MAX_MEDIA_SECTIONS)]
    # Every m-line repeats the one certificate fingerprint.
    assert len({tuple(m.fingerprints) for m in answer.media}) == 1
    # The event loop ran other tasks between slices of the work (one slice per 64 m-lines and the parse).
    assert ticks >= MAX_MEDIA_SECTIONS // 64


async def test_offered_m_lines_pair_with_local_transceivers_by_kind_in_order(make_pc: MakePc) -> None:
    pc = make_pc()
    first_video = pc.add_transceiver("video", "sendonly")
    second_video = pc.add_transceiver("video", "sendonly")
    audio = pc.add_transceiver("audio", "sendonly")
    sections = [audio_section("a"), video_section("v1"), video_section("v2"), video_section("v3")]
    await pc.set_remote_description(offer_with(sections), "offer")
    by_mid = {t.mid: t for t in pc.transceivers}
    assert by_mid["a"] is audio and by_mid["v1"] is first_video and by_mid["v2"] is second_video
    assert by_mid["v3"] not in (first_video, second_video, audio) and by_mid["v3"].direction == "recvonly"
    answer = parse_sdp(await pc.create_answer())
    assert [m.direction for m in answer.media] == ["sendonly", "sendonly", "sendonly", "inactive"]


@pytest.mark.parametrize(
    "lines, limit, what",
    [
        ([f"a=rtpmap:{96 + i % 32} VP8/90000" for i in range(MAX_CODECS_PER_SECTION + 1)], 128, "a=rtpmap lines"),
        ([f"a=ssrc:{1000 + i} cname:x" for i in range(MAX_SSRCS_PER_SECTION + 1)], 64, "a=ssrc ids"),
        ([f"a=rid:r{i} send" for i in range(MAX_RIDS_PER_SECTION + 1)], 16, "a=rid lines"),
    ],
)
def test_per_m_line_lists_have_limits(lines: list[str], limit: int, what: str) -> None:
    with pytest.raises(ValueError, match=f"at most {limit} {what} per m-line expected"):
        parse_sdp(offer_with([video_section("0", extra=lines)]))
    at_limit = parse_sdp(offer_with([video_section("0", extra=lines[:-1])]))
    media = at_limit.media[0]
    assert limit in (len(media.codecs), len(media.ssrcs), len(media.rids))


async def test_an_answer_lists_a_bounded_number_of_codecs(make_pc: MakePc) -> None:
    pc = make_pc()
    repeated = [f"a=rtpmap:{pt} VP8/90000" for pt in range(96, 128)]
    await pc.set_remote_description(offer_with([video_section("0", extra=repeated)]), "offer")
    answer = parse_sdp(await pc.create_answer())
    codecs = answer.media[0].codecs
    assert 1 <= len(codecs) <= 16 and {c.name for c in codecs} == {"VP8"}
    assert [c.payload_type for c in codecs] == list(range(96, 96 + len(codecs)))


async def test_candidate_floods_stop_at_the_limit(make_pc: MakePc, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kitewire.transport.candidates")
    pc = make_pc()
    flood = [f"{port} 1 udp 2130706431 127.0.0.1 {port} typ host" for port in range(2000, 2400)]
    await pc.set_remote_description(offer_with([video_section("0")], candidates=flood), "offer")
    assert len(pc._transport.ice_connection.remote_candidates) == MAX_REMOTE_CANDIDATES
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings  # one for the lines not looked at, one for the limit
    assert any("only the first 256" in w for w in warnings) and any("beyond 64" in w for w in warnings)
    # Trickled candidates beyond the limit are refused with the limit named; known ones are no-ops.
    with pytest.raises(ValueError, match=f"at most {MAX_REMOTE_CANDIDATES} remote candidates per connection"):
        await pc.add_ice_candidate(IceCandidateInit("candidate:9 1 udp 2130706431 127.0.0.1 9 typ host"))
    await pc.add_ice_candidate(IceCandidateInit(f"candidate:{flood[0]}"))
    assert len(pc._transport.ice_connection.remote_candidates) == MAX_REMOTE_CANDIDATES
    assert len(caplog.records) == 2
