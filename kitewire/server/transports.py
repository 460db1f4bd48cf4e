"""One participant's PeerConnections and their negotiation.

Legacy ``/rtc`` clients get two: a publisher connection the client offers and
a subscriber connection the server offers. ``/rtc/v1`` clients get one, which
the client always offers; the server sends on the recvonly m-lines it offered
(``sections``) and asks for a new offer when it needs more. Either way the
offer/answer rounds the server starts follow ``Negotiation``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Literal, Protocol

from livekit.protocol import rtc as pb_rtc

from kitewire.transport import Codec, IceCandidateInit, PeerConnection, Transceiver
from kitewire.transport.sdp import parse_sdp

from .context import ParticipantContext
from .data_relay import DataRelay
from .downtrack import DownTrack
from .limits import MAX_EARLY_CANDIDATES, OFFER_BURST, OFFERS_PER_SECOND, RateLimit
from .negotiation import Negotiation
from .sections import MediaSections
from .uptrack import PublishedTrack

__all__ = ["PUBLISHER", "SUBSCRIBER", "TransportOwner", "Transports"]

logger = logging.getLogger("kitewire.server")

PUBLISHER = pb_rtc.SignalTarget.PUBLISHER
SUBSCRIBER = pb_rtc.SignalTarget.SUBSCRIBER
# Offers at least this long are parsed beside the event loop (it keeps forwarding media meanwhile).
_PARSE_IN_THREAD_CHARS = 16 * 1024


class TransportOwner(Protocol):
    """What the transports need of their participant."""

    @property
    def identity(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    @property
    def subscriptions(self) -> Mapping[str, DownTrack]: ...

    @property
    def published(self) -> Mapping[str, PublishedTrack]: ...

    def send(self, response: pb_rtc.SignalResponse) -> bool: ...

    def requested_codec_order(self, transceiver: Transceiver) -> tuple[str, ...]:
        """Codec names the AddTrackRequest for what ``transceiver`` receives asked for, preferred first."""
        ...

    def transport_connected(self) -> None:
        """The connection the client waits for has connected."""

    def transport_failed(self, reason: str) -> None:
        """A connection failed for good."""


class Transports:
    """The PeerConnections of one participant (``single_pc``: one, else publisher and subscriber)."""

    def __init__(
        self,
        owner: TransportOwner,
        context: ParticipantContext,
        relay: DataRelay,
        *,
        single_pc: bool,
        subscriber_primary: bool,
    ) -> None:
        self._owner = owner
        self._context = context
        self._relay = relay
        self.single_pc = single_pc
        #: Whether the subscriber connection is the one the client waits for (livekit's rule).
        self.subscriber_primary = subscriber_primary
        self.publisher_pc: PeerConnection | None = None
        self.subscriber_pc: PeerConnection | None = None
        self.negotiation = Negotiation()
        #: Single-PC mode: which offered m-lines carry which downtrack.
        self.sections = MediaSections()
        self.primary_connected = asyncio.Event()
        self._offers = RateLimit(OFFER_BURST, OFFERS_PER_SECOND)
        self._offer_task: asyncio.Task[None] | None = None
        self._offer_request: asyncio.Handle | None = None
        self._offer_id = 0
        self._early_candidates: list[IceCandidateInit] = []

    @property
    def primary_pc(self) -> PeerConnection | None:
        """The connection whose state is the session's (ICE timeout, ACTIVE)."""
        return self.subscriber_pc if self.subscriber_primary else self.publisher_pc

    @property
    def media_pc(self) -> PeerConnection | None:
        """The connection downtracks send on."""
        return self.publisher_pc if self.single_pc else self.subscriber_pc

    # ----- connections -----

    def _new_pc(self, target: int) -> PeerConnection:
        pc = self._context.new_peer_connection()

        def on_candidate(candidate: IceCandidateInit | None) -> None:
            if candidate is None or not candidate.candidate:
                return
            message = pb_rtc.SignalResponse()
            message.trickle.candidateInit = candidate.to_json()
            message.trickle.target = target  # type: ignore[assignment]
            self._owner.send(message)

        def on_state(state: str) -> None:
            if state == "connected":
                if pc is self.primary_pc:
                    self.primary_connected.set()
                    self._owner.transport_connected()
                if pc is self.media_pc:
                    for down in self._owner.subscriptions.values():
                        down.track.request_keyframe()
            elif state == "failed" and not self._owner.closed:
                which = "publisher" if target == PUBLISHER else "subscriber"
                self._owner.transport_failed(f"{which} ICE connection failed")

        pc.on_ice_candidate = on_candidate
        pc.on_connection_state_change = on_state
        return pc

    def create_subscriber_pc(self) -> None:
        """Two-PC mode: the connection the server offers (it carries the server-opened data channels)."""
        self.subscriber_pc = self._new_pc(SUBSCRIBER)
        self._relay.open_receive_channels(self.subscriber_pc)

    def _ensure_publisher_pc(self) -> PeerConnection:
        if self.publisher_pc is None:
            pc = self._new_pc(PUBLISHER)
            pc.on_data_channel = self._relay.take_publish_channel
            self.publisher_pc = pc
            if self.single_pc:
                # Single-PC clients take server-opened channels on this PC as their receive channels.
                self._relay.open_receive_channels(pc)
        return self.publisher_pc

    async def wait_connected(self, timeout: float) -> bool:
        """Whether the primary connection connected within ``timeout`` (True when there is none)."""
        try:
            await asyncio.wait_for(self.primary_connected.wait(), timeout)
        except TimeoutError:
            return self.primary_pc is None
        return True

    async def add_remote_candidate(self, target: int, candidate: IceCandidateInit) -> None:
        """Add a trickled candidate to the connection ``target`` names (held until it has an offer)."""
        if target == SUBSCRIBER and not self.single_pc:
            if self.subscriber_pc is not None:
                await self.subscriber_pc.add_ice_candidate(candidate)
        elif self.publisher_pc is None or self.publisher_pc.remote_description is None:
            if len(self._early_candidates) < MAX_EARLY_CANDIDATES:
                self._early_candidates.append(candidate)
        else:
            await self.publisher_pc.add_ice_candidate(candidate)

    # ----- the client's offers -----

    async def answer_offer(self, offer: pb_rtc.SessionDescription) -> PeerConnection:
        """Answer the client's offer (its publisher PC, or its only PC); returns that PC.

        ValueError when the client offers faster than ``limits.OFFERS_PER_SECOND`` allows.
        """
        if not self._offers.take(time.monotonic()):
            raise ValueError(
                f"offer: expected at most {OFFER_BURST} offers at once and {OFFERS_PER_SECOND:g} per second after"
            )
        pc = self._ensure_publisher_pc()
        await pc.set_remote_description(offer.sdp, "offer")
        for candidate in self._early_candidates:
            with contextlib.suppress(ValueError):
                await pc.add_ice_candidate(candidate)
        self._early_candidates.clear()
        for transceiver in pc.transceivers:
            # livekit-server's rule: the answer lists the codec the publisher asked for first, so it is the one sent.
            if transceiver.remote_sends and not transceiver.stopped:
                transceiver.answer_codec_order = self._owner.requested_codec_order(transceiver)
        mid_to_track: dict[str, str] = {}
        if self.single_pc:
            # The description was checked above; reading its directions is the model's job.
            if len(offer.sdp) >= _PARSE_IN_THREAD_CHARS:
                session = await asyncio.to_thread(parse_sdp, offer.sdp)
            else:
                session = parse_sdp(offer.sdp)
            self.sections.offer_received(session)
            # Whatever this offer was asked for, its answer settles it; more rounds follow below if owed.
            self.negotiation.remote_arrived()
            self.sections.bind_waiting(self.sections.free(pc.transceivers, self._used()))
            mid_to_track = self._mid_to_track()
        sdp = await pc.create_answer()
        response = pb_rtc.SignalResponse()
        response.answer.type = "answer"
        response.answer.sdp = sdp
        response.answer.id = offer.id
        for mid, track_sid in mid_to_track.items():
            response.answer.mid_to_track_id[mid] = track_sid
        self._owner.send(response)
        return pc

    def offer_handled(self) -> None:
        """After the client's offer was answered and its tracks taken: ask for another if downtracks still wait."""
        if self.single_pc and self.sections.offer_needed:
            self.request_negotiation()

    def _used(self) -> set[int]:
        used = {id(d.transceiver) for d in self._owner.subscriptions.values() if d.transceiver is not None}
        used.update(id(t.transceiver) for t in self._owner.published.values())
        return used

    def _mid_to_track(self) -> dict[str, str]:
        return {
            down.transceiver.mid: down.track.sid
            for down in self._owner.subscriptions.values()
            if down.transceiver is not None and down.transceiver.mid is not None
        }

    # ----- the server's offers -----

    def request_negotiation(self) -> None:
        """Start an offer/answer round for the current downtracks (changes coalesce while one is out).

        Two-PC mode: offer the subscriber PC. Single-PC mode: ask the client to offer.
        """
        if self._owner.closed:
            return
        loop = asyncio.get_running_loop()
        if self.single_pc:
            # Every change made in this event-loop turn goes into one request.
            if self._offer_request is None:
                self._offer_request = loop.call_soon(self._ask_for_offer)
            return
        if self.subscriber_pc is not None and self.negotiation.request():
            self._offer_task = loop.create_task(self._offer())

    def _ask_for_offer(self) -> None:
        self._offer_request = None
        if self._owner.closed or not self.sections.offer_needed or not self.negotiation.request():
            return
        free = self.sections.free(self.publisher_pc.transceivers, self._used()) if self.publisher_pc else []
        wanted = self.sections.wanted(free)
        response = pb_rtc.SignalResponse()
        response.media_sections_requirement.num_audios = wanted["audio"]
        response.media_sections_requirement.num_videos = wanted["video"]
        self._owner.send(response)

    async def _offer(self) -> None:
        # Let every change made in the current event-loop turn land in one offer.
        await asyncio.sleep(0)
        pc = self.subscriber_pc
        if pc is None or self._owner.closed:
            self.negotiation.abandon()
            return
        self.negotiation.round_started()
        try:
            sdp = await pc.create_offer()
        except Exception:
            logger.exception("participant %s: subscriber offer failed", self._owner.identity)
            self.negotiation.abandon()
            return
        self._offer_id += 1
        response = pb_rtc.SignalResponse()
        response.offer.type = "offer"
        response.offer.sdp = sdp
        response.offer.id = self._offer_id
        for mid, track_sid in self._mid_to_track().items():
            response.offer.mid_to_track_id[mid] = track_sid
        self._owner.send(response)

    async def apply_answer(self, answer: pb_rtc.SessionDescription) -> None:
        """Apply the client's answer to the server's subscriber offer (one nobody waits for is ignored)."""
        pc = self.subscriber_pc
        if pc is None or not self.negotiation.awaiting_remote or pc.signaling_state != "have-local-offer":
            logger.debug("participant %s: unexpected subscriber answer ignored", self._owner.identity)
            return
        await pc.set_remote_description(answer.sdp, "answer")
        if self.negotiation.remote_arrived():
            self.request_negotiation()

    # ----- downtracks -----

    def add_sending_section(self, track: PublishedTrack, stream_id: str) -> Transceiver | None:
        """Two-PC mode: a new sendonly m-line for ``track`` on the subscriber PC (None without one)."""
        pc = self.subscriber_pc
        if pc is None:
            return None
        codec = track.codec
        codecs = None
        if codec is not None:
            codecs = [Codec(codec.mime_type, codec.clock_rate, codec.channels, codec.fmtp, None, codec.rtcp_feedback)]
        kind: Literal["audio", "video"] = "audio" if track.kind == "audio" else "video"
        return pc.add_transceiver(kind, "sendonly", codecs=codecs, stream_id=stream_id, track_id=track.sid)

    def release(self, down: DownTrack) -> None:
        """Stop sending ``down``'s m-line (single-PC: the next answer makes it inactive; two-PC: stopped)."""
        if self.single_pc:
            self.sections.release(down)
        elif down.transceiver is not None:
            with contextlib.suppress(Exception):
                down.transceiver.stop()

    def ready_to_send(self, transceiver: Transceiver) -> bool:
        """Whether media may go out on ``transceiver`` now (connected and negotiated to send)."""
        pc = self.media_pc
        return (
            pc is not None
            and pc.connection_state == "connected"
            and transceiver.current_direction in ("sendonly", "sendrecv")
        )

    async def close(self) -> None:
        """Stop negotiating and close the connections."""
        if self._offer_task is not None:
            self._offer_task.cancel()
        if self._offer_request is not None:
            self._offer_request.cancel()
        for pc in (self.publisher_pc, self.subscriber_pc):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
