"""One simulated participant on the wire client: counts what it receives, replays what it publishes."""

from __future__ import annotations

import contextlib
import secrets
import struct
import time

from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from kitewire.engine.wire import EngineError, IncomingTrack, WireClient, add_track_request
from kitewire.media import (
    VideoLayerPlan,
)
from kitewire.transport import PeerConnectionConfig, RtpHeader, Transceiver
from kitewire.transport.rtp import URI_ABS_CAPTURE_TIME

from .params import NTP_UNIX_OFFSET, Q32_SCALE
from .replay import EncodedLoop, LayerReplay, Pacer

_unpack_q64 = struct.Struct("!Q").unpack_from


class TrackCounter:
    """Per-track counters updated for every received packet; nothing is decoded."""

    __slots__ = (
        "capture_time_id",
        "last_seq",
        "latency_count",
        "latency_max",
        "latency_sum",
        "lost",
        "packets",
        "payload_bytes",
        "track_sid",
    )

    def __init__(self, track_sid: str, capture_time_id: int | None = None) -> None:
        self.track_sid = track_sid
        self.packets = 0
        self.payload_bytes = 0
        self.lost = 0
        self.last_seq = -1
        self.capture_time_id = capture_time_id
        self.latency_sum = 0.0
        self.latency_count = 0
        self.latency_max = 0.0

    def on_rtp(self, data: bytes, header: RtpHeader) -> None:
        seq = header.sequence_number
        last = self.last_seq
        self.packets += 1
        self.payload_bytes += header.payload_end - header.payload_offset
        if header.marker and self.capture_time_id is not None:
            # Once per frame: its last packet's arrival against the publisher's send time.
            value = header.extensions.get(self.capture_time_id)
            if value is not None and len(value) >= 8:
                latency = time.time() + NTP_UNIX_OFFSET - _unpack_q64(value)[0] / Q32_SCALE
                self.latency_sum += latency
                self.latency_count += 1
                if latency > self.latency_max:
                    self.latency_max = latency
        if last < 0:
            self.last_seq = seq
            return
        delta = (seq - last) & 0xFFFF
        if delta == 1:
            self.last_seq = seq
        elif 1 < delta < 0x8000:
            self.lost += delta - 1
            self.last_seq = seq
        elif delta >= 0x8000 and self.lost:
            # An older packet (retransmission or reordering) fills a gap counted before.
            self.lost -= 1

    def snapshot(self) -> tuple[int, int, int, float, int]:
        return self.packets, self.payload_bytes, self.lost, self.latency_sum, self.latency_count


class SimulatedParticipant:
    """A client on the wire (:class:`~kitewire.engine.WireClient`) whose tracks are replayed loops and counters."""

    def __init__(self, name: str, identity: str) -> None:
        self.name = name
        self.identity = identity
        self.wire: WireClient | None = None
        self.counters: dict[str, TrackCounter] = {}  # by track sid
        #: The receiving m-line of each counted track (by track sid).
        self.receivers: dict[str, Transceiver] = {}
        self._counted_mids: set[str] = set()
        self.layers: list[LayerReplay] = []
        self.track_sid = ""
        self.error: str | None = None

    # -- connection --------------------------------------------------------

    async def connect(self, url: str, token: str, *, subscribe: bool, timeout: float, single_pc: bool = False) -> None:
        """Join. ``single_pc``: /rtc/v1 with one PeerConnection (livekit 1.x SDKs), else /rtc with two."""
        self.wire = WireClient(self, PeerConnectionConfig(loopback_only=True, ice_servers=[]))
        await self.wire.connect(
            url, token, auto_subscribe=subscribe, join_mode="v1" if single_pc else "legacy", timeout=timeout
        )

    def on_signal_message(self, message: pb_rtc.SignalResponse) -> None:
        """WireListener: nothing else matters to a simulated participant."""

    def on_signal_closed(self, reason: int, reconnectable: bool, detail: str) -> None:
        """WireListener: the run goes on without this participant; the error says why."""
        if self.error is None:
            self.error = detail

    def on_data_packet(self, packet: pb_models.DataPacket, reliable: bool) -> None:
        """WireListener: simulated participants send and read no data."""

    def on_media_failed(self) -> None:
        """WireListener: a PeerConnection failed."""
        if self.error is None:
            self.error = "a media connection failed"

    async def on_incoming_tracks(self, tracks: list[IncomingTrack]) -> None:
        """WireListener: count every newly arriving video track (an m-line is never counted twice)."""
        for track in tracks:
            if track.kind != "video" or track.mid in self._counted_mids:
                continue
            counter = self.counters.get(track.track_sid)
            if counter is None:
                capture_time_id = track.transceiver.receiver.header_extensions.get(URI_ABS_CAPTURE_TIME)
                counter = self.counters[track.track_sid] = TrackCounter(track.track_sid, capture_time_id)
            self._counted_mids.add(track.mid)
            self.receivers[track.track_sid] = track.transceiver
            # The bound method itself: no wrapper call per packet.
            track.transceiver.receiver.on_rtp = counter.on_rtp

    @property
    def single_pc(self) -> bool:
        """True when joined over /rtc/v1 with one PeerConnection."""
        return self.wire is not None and self.wire.single_pc

    def tracks_receiving(self) -> int:
        """How many tracks delivered at least one packet."""
        return sum(1 for counter in self.counters.values() if counter.packets > 0)

    # -- publishing --------------------------------------------------------

    async def publish(
        self,
        loops: dict[str, EncodedLoop],
        plans: list[VideoLayerPlan],
        simulcast: bool,
        pacer: Pacer,
        timeout: float,
        mime_type: str = "video/VP8",
    ) -> str:
        """Announce a video track, negotiate it, and start replaying the loop(s); returns the track sid.

        Raises EngineError when the server refuses or does not answer."""
        wire = self.wire
        if wire is None:
            raise EngineError("not connected")
        cid = f"TR_load_{secrets.token_hex(6)}"
        name = "video-simulcast" if simulcast else "video"
        camera = pb_models.TrackSource.CAMERA
        request = add_track_request(
            cid=cid, name=name, source=camera, codec=mime_type, layers=plans, simulcast=simulcast
        )
        info = await wire.request_track(request, timeout)
        transceiver = wire.add_video_sender(cid, mime_type, plans, simulcast)
        await wire.negotiate(timeout)

        sender = transceiver.sender
        payload_type = next(
            (
                c.payload_type
                for c in sender.codecs
                if c.mime_type.lower() == mime_type.lower() and c.payload_type is not None
            ),
            None,
        )
        if payload_type is None:
            raise EngineError(f"the server did not accept {mime_type}")
        by_ssrc: dict[int, LayerReplay] = {}
        for plan in plans:
            rid = plan.rid if simulcast else None
            ssrc = sender.ssrc_for_rid(plan.rid) if simulcast else sender.ssrc
            replay = LayerReplay(sender, loops[plan.rid], rid, ssrc, payload_type)
            by_ssrc[ssrc] = replay
            self.layers.append(replay)

        def on_keyframe_request(media_ssrc: int) -> None:
            targets = [by_ssrc[media_ssrc]] if media_ssrc in by_ssrc else list(by_ssrc.values())
            for target in targets:
                target.keyframe_requests += 1
                target.restart_wanted = target.answers_keyframe_requests

        def on_nack(media_ssrc: int, lost: list[int]) -> None:
            replay = by_ssrc.get(media_ssrc)
            if replay is not None:
                replay.on_nack(lost)

        sender.on_keyframe_request = on_keyframe_request
        sender.on_nack = on_nack
        for replay in self.layers:
            pacer.add(replay)
        self.track_sid = info.sid
        return info.sid

    # -- leaving -----------------------------------------------------------

    async def close(self) -> None:
        """Leave and close everything. Idempotent; never raises."""
        if self.wire is not None:
            with contextlib.suppress(Exception):
                await self.wire.close(leave=True)
