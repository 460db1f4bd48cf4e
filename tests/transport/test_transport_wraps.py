"""Counters that wrap, on the transport: transport-cc sequence numbers, reference
time and feedback count; receiver-report extended highest sequence and loss;
NACK items at the seq wrap; SR timestamps; the SRTP rollover counter."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pylibsrtp
import pytest
from aiortc.rtcdtlstransport import SRTP_PROFILES, SRTPProtectionProfile
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from kitewire.transport import PeerConnection, Transceiver
from kitewire.transport.rtcp import (
    TRANSPORT_CC_REFERENCE_WRAP_US,
    Nack,
    ReceiverReport,
    ReportBlock,
    SenderReport,
    TransportCcFeedback,
    build_nack,
    build_receiver_report,
    build_sender_report,
    build_transport_cc,
    ntp_now,
    ntp_to_middle32,
    parse_rtcp,
)
from kitewire.transport.rtp import (
    build_rtp_packet,
    decode_transport_cc,
    encode_transport_cc,
    parse_rtp_header,
    set_sequence_number,
    set_timestamp,
)
from kitewire.transport.stats import RecvStats
from kitewire.transport.twcc import TwccRecorder
from transport_helpers import negotiate, wait_for

# Shrinking streams of many thousand packets takes minutes: report a failure as found.
QUICK_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
# One transport-cc reference time unit is 64 ms; the 24-bit field wraps after this.
TWCC_WRAP_US = (1 << 24) * 64_000
assert TWCC_WRAP_US == TRANSPORT_CC_REFERENCE_WRAP_US


def reorder(items: list[int], rng: random.Random, window: int) -> list[int]:
    """Each item moves at most ``window`` places (a bounded network reordering)."""
    keyed = sorted(range(len(items)), key=lambda i: i + rng.random() * window)
    return [items[i] for i in keyed]


# -- transport-cc --------------------------------------------------------------


@settings(max_examples=25, deadline=None, phases=QUICK_PHASES)
@given(
    before_wrap=st.integers(1, 5000),
    clock_start_us=st.one_of(st.integers(0, 1 << 40), st.integers(TWCC_WRAP_US - 5_000_000, TWCC_WRAP_US)),
    loss=st.sampled_from([0.0, 0.05, 0.3]),
    window=st.sampled_from([0, 3, 40]),
    seed=st.integers(0, 2**32),
)
def test_twcc_feedback_across_seq_reference_and_count_wraps(
    before_wrap: int, clock_start_us: int, loss: float, window: int, seed: int
) -> None:
    rng = random.Random(seed)
    recorder = TwccRecorder()
    first_seq = 0x10000 - before_wrap
    count = 9000  # crosses the 16-bit wrap; more than 256 feedbacks wrap the 8-bit count
    exts = [first_seq + i for i in range(count) if i == 0 or rng.random() >= loss]
    arrival: dict[int, int] = {}
    now = clock_start_us
    reported: dict[int, int | None] = {}
    feedbacks: list[TransportCcFeedback] = []
    newest = exts[0]
    before_first_feedback: set[int] = set()
    for position, ext in enumerate(reorder(exts, rng, window)):
        newest = max(newest, ext)
        if not feedbacks:
            before_first_feedback.add(ext)
        now += rng.randrange(0, 3000)
        arrival[ext] = now
        recorder.record(ext & 0xFFFF, now, media_ssrc=9)
        if position % 20 == 19 or position == len(exts) - 1:
            for packet in recorder.build(sender_ssrc=1):
                (parsed,) = parse_rtcp(packet)
                assert isinstance(parsed, TransportCcFeedback)
                feedbacks.append(parsed)
                # Map the 16-bit numbers back to the stream: a feedback only covers the recent past.
                base_ext = newest - ((newest - parsed.base_sequence) & 0xFFFF)
                for offset, (seq, arrived_us) in enumerate(parsed.packets):
                    assert seq == (parsed.base_sequence + offset) & 0xFFFF
                    seq_ext = base_ext + offset
                    assert seq_ext not in reported, f"seq {seq} reported twice"
                    reported[seq_ext] = arrived_us
                    if arrived_us is None:
                        assert seq_ext not in arrival, f"seq {seq} reported lost, but it had arrived"
                    else:
                        # The arrival times are right modulo the reference time's own wrap.
                        assert (arrival[seq_ext] - arrived_us) % TWCC_WRAP_US < 250
    # Everything that arrived was reported: with its arrival time, or (when it came
    # only after the feedback covering it had gone) as lost.
    assert {ext for ext, arrived in reported.items() if arrived is not None} <= set(exts)
    # Only a packet from before the first feedback's base, arriving after it went, is left out;
    # one reordered at the very start (even from before the wrap) is still in the first feedback.
    first_base = min(reported)
    assert all(ext < first_base for ext in set(exts) - set(reported))
    assert all(reported.get(ext) is not None for ext in before_first_feedback)
    counts = [fb.feedback_count for fb in feedbacks]
    assert len(counts) > 256 and all((b - a) & 0xFF == 1 for a, b in zip(counts, counts[1:], strict=False))
    # Consecutive feedbacks continue where the previous one stopped, across the wrap.
    for before, after in zip(feedbacks, feedbacks[1:], strict=False):
        assert (after.base_sequence - before.base_sequence) & 0xFFFF >= len(before.packets)


@settings(max_examples=100, deadline=None)
@given(
    base=st.integers(0, 0xFFFF),
    reference_us=st.integers(0, 3 * TWCC_WRAP_US),
    deltas=st.lists(st.one_of(st.none(), st.integers(-8_000_000, 8_000_000)), min_size=1, max_size=300),
    feedback_count=st.integers(0, 1000),
)
def test_transport_cc_build_and_parse_round_the_wraps(
    base: int, reference_us: int, deltas: list[int | None], feedback_count: int
) -> None:
    reference_us -= reference_us % 64_000
    # Each arrival is within the 16-bit delta (+-8.19 s) of the one before.
    packets: list[tuple[int, int | None]] = []
    arrival = reference_us
    for index, delta in enumerate(deltas):
        if delta is not None:
            arrival += delta
        packets.append(((base + index) & 0xFFFF, None if delta is None else arrival))
    (parsed,) = parse_rtcp(build_transport_cc(1, 2, base, reference_us, feedback_count, packets))
    assert isinstance(parsed, TransportCcFeedback)
    assert parsed.base_sequence == base and parsed.feedback_count == feedback_count & 0xFF
    assert (parsed.reference_time_us - reference_us) % TWCC_WRAP_US == 0
    assert [seq for seq, _ in parsed.packets] == [seq for seq, _ in packets]
    for (_, sent), (_, got) in zip(packets, parsed.packets, strict=True):
        assert (sent is None) == (got is None)
        if sent is not None and got is not None:
            assert (sent - got) % TWCC_WRAP_US < 250


# -- receiver reports ------------------------------------------------------------


@settings(max_examples=8, deadline=None, phases=QUICK_PHASES)
@given(
    first_seq=st.integers(0, 0xFFFF),
    first_timestamp=st.integers(0, 0xFFFFFFFF),
    loss=st.sampled_from([0.0, 0.01, 0.2]),
    duplicate=st.sampled_from([0.0, 0.02]),
    window=st.sampled_from([0, 5, 100]),
    seed=st.integers(0, 2**32),
)
def test_receiver_report_extended_highest_sequence_and_loss_across_wraps(
    first_seq: int, first_timestamp: int, loss: float, duplicate: float, window: int, seed: int
) -> None:
    rng = random.Random(seed)
    sent = [first_seq + i for i in range(2 * 0x10000 + 3000)]
    arriving = reorder([ext for ext in sent if rng.random() >= loss], rng, window)
    arriving = [ext for ext in arriving for _ in range(2 if rng.random() < duplicate else 1)]
    stats = RecvStats(arriving[0] & 0xFFFF, 90_000)
    highest = arriving[0]
    expected_prior = received_prior = 0
    for position, ext in enumerate(arriving):
        # 90 kHz, 1000 packets a second, arriving exactly on time: no jitter.
        timestamp = (first_timestamp + (ext - first_seq) * 90) & 0xFFFFFFFF
        stats.update(ext & 0xFFFF, timestamp, 10.0 + (ext - first_seq) / 1000)
        received = position + 1
        highest = max(highest, ext)
        if position % 5000 == 0 or position == len(arriving) - 1:
            block = stats.report_block(1, 20.0)
            # cycles << 16 | seq, counted from the first packet's own number.
            assert block.highest_sequence == (highest - arriving[0] + (arriving[0] & 0xFFFF)) & 0xFFFFFFFF
            expected = highest - arriving[0] + 1
            assert block.packets_lost == min(max(expected - received, 0), 0x7FFFFF)
            interval_expected, interval_received = expected - expected_prior, received - received_prior
            lost_interval = interval_expected - interval_received
            fraction = (lost_interval << 8) // interval_expected if interval_expected > 0 and lost_interval > 0 else 0
            assert block.fraction_lost == min(fraction, 255)
            expected_prior, received_prior = expected, received
            assert block.jitter <= 1, "timestamp wraps counted as jitter"
    assert (highest - arriving[0]) >> 16 >= 2, "fewer than two seq wraps"


@settings(max_examples=50, deadline=None)
@given(first=st.integers(0, 0xFFFF), offsets=st.sets(st.integers(0, 600), min_size=1, max_size=80))
def test_nack_build_and_parse_straddling_the_wrap(first: int, offsets: set[int]) -> None:
    lost = sorted((first + offset) & 0xFFFF for offset in offsets)
    (parsed,) = parse_rtcp(build_nack(1, 2, lost))
    assert isinstance(parsed, Nack)
    assert sorted(parsed.lost) == lost
    # Items are packed in stream order from the oldest, so the wrap costs no extra items.
    in_order = [(first + offset) & 0xFFFF for offset in sorted(offsets)]
    if max(offsets) - min(offsets) < 0x8000:
        assert parsed.lost == in_order


@settings(max_examples=100, deadline=None)
@given(ntp=st.integers(0, (1 << 64) - 1), rtp=st.integers(0, 0xFFFFFFFF), packets=st.integers(0, 1 << 40))
def test_sender_report_fields_round_the_wraps(ntp: int, rtp: int, packets: int) -> None:
    (parsed,) = parse_rtcp(build_sender_report(5, ntp, rtp + (1 << 32), packets, packets * 1200))
    assert isinstance(parsed, SenderReport)
    assert (parsed.ntp_time, parsed.rtp_timestamp) == (ntp, rtp)
    # The counters wrap at 32 bits, as RFC 3550 says they do.
    assert (parsed.packet_count, parsed.octet_count) == (packets & 0xFFFFFFFF, packets * 1200 & 0xFFFFFFFF)


def test_ntp_time_wraps_into_era_one_and_round_trip_times_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    era_one = 2_085_978_496  # 2036-02-07 06:28:16 UTC: NTP seconds wrap to 0
    monkeypatch.setattr(time, "time", lambda: era_one - 0.25)  # the clock ntp_now reads
    before = ntp_now()
    monkeypatch.setattr(time, "time", lambda: era_one + 1.5)
    after = ntp_now()
    assert before >> 32 == 0xFFFFFFFF and after >> 32 == 1 and after < 1 << 64
    assert (after & 0xFFFFFFFF) == 1 << 31  # .5 s
    # LSR/DLSR-style arithmetic on the middle 32 bits: 1.75 s in 1/65536 s.
    assert (ntp_to_middle32(after) - ntp_to_middle32(before)) & 0xFFFFFFFF == int(1.75 * 65536)
    (parsed,) = parse_rtcp(build_sender_report(1, after, 0, 0, 0))
    assert isinstance(parsed, SenderReport) and parsed.ntp_time == after


# -- SRTP rollover counter -------------------------------------------------------


def _session_pair(profile: SRTPProtectionProfile, rng: random.Random) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """A sender and a receiver session with the transport's policy (aiortc's DTLS-SRTP setup)."""
    key = rng.randbytes(profile.key_length + profile.salt_length)
    sessions = []
    for ssrc_type in (pylibsrtp.Policy.SSRC_ANY_OUTBOUND, pylibsrtp.Policy.SSRC_ANY_INBOUND):
        policy = pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=profile.libsrtp_profile)
        policy.allow_repeat_tx = True
        policy.window_size = 1024
        sessions.append(pylibsrtp.Session(policy))
    return sessions[0], sessions[1]


@pytest.mark.parametrize("profile", SRTP_PROFILES, ids=lambda p: str(p.libsrtp_profile))
@settings(max_examples=2, deadline=None, phases=QUICK_PHASES)
@given(first_seq=st.integers(0, 0x7FFF), seed=st.integers(0, 2**32))
def test_srtp_rollover_counter_across_several_seq_wraps_with_reordering(
    profile: SRTPProtectionProfile, first_seq: int, seed: int
) -> None:
    rng = random.Random(seed)
    tx, rx = _session_pair(profile, rng)
    ssrc = rng.randrange(1, 1 << 32)
    count = 2 * 0x10000 + 5000
    protected = []
    for ext in range(first_seq, first_seq + count):
        payload = ext.to_bytes(4, "big") + bytes(20)
        packet = build_rtp_packet(
            payload_type=96, sequence_number=ext & 0xFFFF, timestamp=ext * 3000, ssrc=ssrc, payload=payload
        )
        protected.append(tx.protect(packet))
    order = list(range(count))
    # Heavier reordering right around each wrap: packets from both sides cross over.
    for wrap in range(0x10000 - first_seq, count, 0x10000):
        around = order[wrap - 30 : wrap + 30]
        rng.shuffle(around)
        order[wrap - 30 : wrap + 30] = around
    order = [order[i] for i in reorder(list(range(count)), rng, 8)]
    lost = set(rng.sample(range(1, count), 500))
    for index in order:
        if index in lost:
            continue
        plain = rx.unprotect(protected[index])
        assert plain[12:16] == (first_seq + index).to_bytes(4, "big")  # no CSRC, no extension
    # A replay of a packet long after the wrap is refused, not misread as the next cycle's.
    with pytest.raises(pylibsrtp.Error):
        rx.unprotect(protected[order[-1]])


def test_srtp_receiver_whose_first_packet_comes_after_an_unseen_wrap_cannot_decrypt() -> None:
    # Why senders start their sequence numbers in the lower half (libwebrtc picks
    # 0..32767): libsrtp's receiver starts at rollover counter 0, so if every
    # packet before the sender's first wrap is lost, nothing after it decrypts.
    rng = random.Random(7)
    tx, rx = _session_pair(SRTP_PROFILES[-1], rng)
    protected = [
        tx.protect(build_rtp_packet(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=0, ssrc=1, payload=b"x"))
        for seq in range(65_530, 65_560)
    ]
    for packet in protected[10:]:  # 65530..65535 and 0..3 lost
        with pytest.raises(pylibsrtp.Error):
            rx.unprotect(packet)
    # The same stream seen from before its wrap decrypts throughout.
    tx, rx = _session_pair(SRTP_PROFILES[-1], rng)
    for seq in range(65_530, 65_560):
        packet = build_rtp_packet(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=0, ssrc=1, payload=b"x")
        assert rx.unprotect(tx.protect(packet)) == packet


# -- through a connected PeerConnection pair -------------------------------------------


async def test_reports_across_seq_and_timestamp_wraps_with_a_retransmission(
    make_pc: Callable[..., PeerConnection],
) -> None:
    offerer, answerer = make_pc(rtcp_report_interval=0.1), make_pc(rtcp_report_interval=0.1)
    sending = offerer.add_transceiver("video", "sendonly")
    tracks: list[Transceiver] = []
    answerer.on_track = tracks.append
    await negotiate(offerer, answerer)
    await asyncio.gather(offerer.wait_connected(10), answerer.wait_connected(10))
    srs: list[SenderReport] = []
    tracks[0].receiver.on_sender_report = srs.append
    blocks: list[ReportBlock] = []
    sending.sender.on_receiver_report = lambda block, _rtt: blocks.append(block)
    pt = sending.codecs[0].payload_type
    assert pt is not None
    first_seq, count, lost = 65_300, 400, {65_400, 65_536, 65_537}
    first_timestamp = (1 << 32) - 40 * 3000  # the 32-bit timestamp wraps too

    def timestamp_of(ext: int) -> int:
        return (first_timestamp + (ext - first_seq) // 4 * 3000) & 0xFFFFFFFF  # 4 packets a frame, 30 fps

    def packet(ext: int) -> bytes:
        timestamp = timestamp_of(ext)
        return sending.sender.build_packet(
            b"v" * 100, payload_type=pt, sequence_number=ext & 0xFFFF, timestamp=timestamp
        )

    for ext in range(first_seq, first_seq + count):
        if ext not in lost:
            sending.sender.send_rtp(packet(ext))
    newest_timestamp = timestamp_of(first_seq + count - 1)
    sending.sender.send_rtp(packet(65_536))  # a NACKed packet resent, with its 1.4 s old timestamp
    highest = first_seq + count - 1
    await wait_for(lambda: any(b.highest_sequence == highest and b.packets_lost == 2 for b in blocks))
    # cycles << 16 | seq: one wrap seen, 2 of 400 still missing.
    assert highest >> 16 == 1
    await wait_for(lambda: any(sr.packet_count == count - 2 for sr in srs))
    report = next(sr for sr in srs if sr.packet_count == count - 2)
    # The SR maps wallclock to the newest timestamp (a moment later), not to the resent packet's.
    ahead = (report.rtp_timestamp - newest_timestamp) & 0xFFFFFFFF
    assert ahead < 90_000 * 5, f"SR timestamp {report.rtp_timestamp} is not just after {newest_timestamp}"


@settings(max_examples=100, deadline=None)
@given(
    highest=st.integers(0, 0xFFFFFFFF),
    lost=st.integers(-(1 << 23), (1 << 23) - 1),
    fraction=st.integers(0, 255),
    last_sr=st.integers(0, 0xFFFFFFFF),
)
def test_report_block_extended_sequence_and_signed_loss_round_trip(
    highest: int, lost: int, fraction: int, last_sr: int
) -> None:
    block = ReportBlock(7, fraction, lost, highest, 12, last_sr, 65_536)
    (parsed,) = parse_rtcp(build_receiver_report(1, [block]))
    assert isinstance(parsed, ReceiverReport) and parsed.reports == [block]


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    seq_offset=st.integers(-(1 << 20), 1 << 20),
    timestamp_offset=st.integers(-(1 << 40), 1 << 40),
    twcc=st.integers(0, 1 << 20),
)
def test_rtp_header_rewrites_wrap_like_the_wire(
    seq: int, timestamp: int, seq_offset: int, timestamp_offset: int, twcc: int
) -> None:
    # What a forwarder does: shift seq and timestamp by an offset; the fields wrap, never overflow.
    packet = bytearray(
        build_rtp_packet(
            payload_type=96,
            sequence_number=seq,
            timestamp=timestamp,
            ssrc=3,
            payload=b"p",
            extensions={5: encode_transport_cc(twcc)},
        )
    )
    set_sequence_number(packet, seq + seq_offset)
    set_timestamp(packet, timestamp + timestamp_offset)
    header = parse_rtp_header(packet)
    assert header.sequence_number == (seq + seq_offset) & 0xFFFF
    assert header.timestamp == (timestamp + timestamp_offset) & 0xFFFFFFFF
    assert decode_transport_cc(header.extensions[5]) == twcc & 0xFFFF
