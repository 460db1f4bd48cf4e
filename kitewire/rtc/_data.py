"""The Room's data side: incoming DataPackets to events, RPC and streams; outgoing packets to the engine.

:class:`RoomData` belongs to a :class:`~kitewire.rtc._session.RoomSession`. It
turns user packets into ``data_received``, DTMF into ``sip_dtmf_received`` and
transcriptions into ``transcription_received``, and hands RPC and stream packets
to the participant's :class:`~kitewire.rtc._rpc.RpcEndpoint` and the room's
:class:`~kitewire.rtc._streams.StreamReceiver`. Every packet goes out on the
engine session current when it is sent (a rejoin replaces it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from kitewire.engine import EngineError
from kitewire.engine.handle import EngineHandle

from ._rpc import RpcEndpoint
from ._streams import StreamReceiver
from .data_packet import DataPacket, DataPacketKind, SipDTMF
from .e2ee import DataCryptor
from .participant import Participant, RemoteParticipant
from .track_publication import TrackPublication
from .transcription import TranscriptionSegment

__all__ = ["MIN_RPC_SERVER_VERSION", "RoomData"]

logger = logging.getLogger("kitewire.rtc")

#: The LiveKit server version from which RPC packets are relayed (livekit's SDKs check it too).
MIN_RPC_SERVER_VERSION = (1, 8, 0)
# Seconds a publish may wait for the data channel to open or drain.
_SEND_TIMEOUT = 15.0

Emit = Callable[..., None]


def _version(text: str) -> tuple[int, ...]:
    """(major, minor, patch) of a version string such as "1.8.0" or "v1.9.1-rc1"; () when none."""
    found = re.match(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", text.strip())
    return tuple(int(part or 0) for part in found.groups()) if found else ()


class RoomData:
    """Data packets of one Room (see the module docstring)."""

    def __init__(
        self,
        emit: Emit,
        engine: Callable[[], EngineHandle | None],
        participant: Callable[[str], Participant | None],
    ) -> None:
        self._emit = emit
        self._engine = engine
        self._participant = participant
        self.rpc = RpcEndpoint(self.send_reliable, self._server_supports_rpc)
        self.streams = StreamReceiver()
        self._server_version = ""
        #: seals and opens data packets in an encrypted room (None: not encrypted)
        self.cryptor: DataCryptor | None = None

    def set_max_payload(self, max_payload: int | None) -> None:
        """The room's ``DataStreamOptions.max_payload_byte_length``: the largest incoming stream."""
        self.streams._max_payload = max_payload

    def joined(self, join: signal_pb.JoinResponse) -> None:
        """A (re)join's JoinResponse: what the server says it is."""
        self._server_version = join.server_info.version or join.server_version

    def _server_supports_rpc(self) -> bool:
        return _version(self._server_version) >= MIN_RPC_SERVER_VERSION

    # -- sending -----------------------------------------------------------------------

    async def send(self, packet: models.DataPacket, *, reliable: bool) -> None:
        """Send ``packet`` now; raises ValueError (oversized) or EngineError (not connected)."""
        engine = self._engine()
        if engine is None or not engine.connected:
            raise EngineError("the room is not connected")
        packet.kind = models.DataPacket.RELIABLE if reliable else models.DataPacket.LOSSY
        if self.cryptor is not None:
            self.cryptor.seal(packet)
        await engine.publish_data(packet, reliable, timeout=_SEND_TIMEOUT)

    async def send_reliable(self, packet: models.DataPacket) -> None:
        """:meth:`send` on the reliable channel (what RPC and streams use)."""
        await self.send(packet, reliable=True)

    # -- receiving -----------------------------------------------------------------------

    def on_packet(self, packet: models.DataPacket, reliable: bool) -> None:
        """EngineListener: one DataPacket from the server."""
        kind = packet.WhichOneof("value")
        if kind == "user":
            self._on_user(packet, reliable)
        elif kind == "sip_dtmf":
            dtmf = packet.sip_dtmf
            self._emit("sip_dtmf_received", SipDTMF(dtmf.code, dtmf.digit, self._remote(_sender(packet))))
        elif kind == "transcription":
            self._on_transcription(packet.transcription)
        elif kind in ("rpc_request", "rpc_ack", "rpc_response"):
            packet.participant_identity = _sender(packet)
            self.rpc.on_packet(packet)
        elif kind in ("stream_header", "stream_chunk", "stream_trailer"):
            packet.participant_identity = _sender(packet)
            self.streams.on_packet(packet)
        elif kind == "encrypted_packet":
            if self.cryptor is not None and self.cryptor.open(packet, _sender(packet)):
                self.on_packet(packet, reliable)
            else:
                logger.info(
                    "dropping an encrypted data packet from %s: it does not open with our keys", _sender(packet)
                )

    def _remote(self, identity: str) -> RemoteParticipant | None:
        participant = self._participant(identity)
        return participant if isinstance(participant, RemoteParticipant) else None

    def _on_user(self, packet: models.DataPacket, reliable: bool) -> None:
        user = packet.user
        self._emit(
            "data_received",
            DataPacket(
                data=bytes(user.payload),
                # the channel it came on says it (newer SDKs leave the deprecated kind field unset)
                kind=DataPacketKind.KIND_RELIABLE if reliable else DataPacketKind.KIND_LOSSY,
                participant=self._remote(_sender(packet)),
                topic=user.topic if user.HasField("topic") else None,
            ),
        )

    def _on_transcription(self, transcription: models.Transcription) -> None:
        segments = [
            TranscriptionSegment(
                id=s.id, text=s.text, start_time=s.start_time, end_time=s.end_time, language=s.language, final=s.final
            )
            for s in transcription.segments
        ]
        participant = self._participant(transcription.transcribed_participant_identity)
        publication: TrackPublication | None = None
        if participant is not None:
            publication = participant.track_publications.get(transcription.track_id)
        self._emit("transcription_received", segments, participant, publication)

    def participant_left(self, identity: str) -> None:
        """A remote participant left: its calls and streams end."""
        self.rpc.participant_left(identity)
        self.streams.participant_left(identity)

    def close(self) -> None:
        """The room disconnected."""
        self.rpc.close()
        self.streams.close()


def _sender(packet: models.DataPacket) -> str:
    return packet.participant_identity or packet.user.participant_identity
