"""LiveKit data packets between participants: taken from the channels a
client opens, stamped with its identity, delivered on the channels the server
opened towards each recipient.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from livekit.protocol import models as pb_models

from kitewire.transport import DataChannel, PeerConnection

from .events import log_refusal
from .ids import TRACK_PREFIX

__all__ = ["DATA_LABELS", "DataRelay"]

logger = logging.getLogger("kitewire.server")

#: The channels livekit clients use: reliable (ordered) and lossy (unordered, no retransmits).
DATA_LABELS = ("_reliable", "_lossy")
# Packet kinds only a server may send; a client's copies are dropped.
_SERVER_ONLY_KINDS = ("speaker",)
# Kinds livekit-server relays only from agents (a transcription from anyone else is dropped there too).
_AGENT_ONLY_KINDS = ("transcription",)


class DataRelay:
    """One participant's end of the data relay.

    ``recipients`` lists the relays of everyone else in the room with their
    identities (read at each packet, so joins and leaves need no bookkeeping).
    ``is_agent`` says whether the sender joined as an agent (its token's
    kind): transcriptions are relayed from agents only, as livekit-server does.
    """

    def __init__(
        self,
        *,
        identity: str,
        sid: str,
        room_name: str,
        may_publish: Callable[[], bool],
        recipients: Callable[[], Iterable[tuple[str, DataRelay]]],
        is_agent: Callable[[], bool] = lambda: False,
    ) -> None:
        self.identity = identity
        self.sid = sid
        self.room_name = room_name
        self._may_publish = may_publish
        self._recipients = recipients
        self._is_agent = is_agent
        self.refused_transcriptions = 0
        self._receive_channels: dict[str, DataChannel] = {}
        self._publish_channels: list[DataChannel] = []

    def open_receive_channels(self, pc: PeerConnection) -> None:
        """Open the channels this participant receives others' data on (livekit clients expect the server to)."""
        self._receive_channels["_reliable"] = pc.create_data_channel("_reliable", ordered=True)
        self._receive_channels["_lossy"] = pc.create_data_channel("_lossy", ordered=False, max_retransmits=0)

    def take_publish_channel(self, channel: DataChannel) -> None:
        """Relay what arrives on ``channel``, one the client opened."""
        self._publish_channels.append(channel)
        label = channel.label

        def on_message(data: bytes | str) -> None:
            self.relay(label, data.encode("utf-8") if isinstance(data, str) else data)

        channel.on_message = on_message

    def relay(self, label: str, data: bytes) -> None:
        """Send one packet from this participant to its destinations (all others when it names none)."""
        if label not in DATA_LABELS:
            return
        packet = pb_models.DataPacket()
        try:
            packet.ParseFromString(data)
        except Exception:
            logger.info("participant %s: undecodable data packet (%d bytes) dropped", self.identity, len(data))
            return
        if not self._may_publish():
            log_refusal(
                self.room_name, self.identity, "data", "token does not allow publishing data (canPublishData=false)"
            )
            return
        kind = packet.WhichOneof("value")
        if kind in _SERVER_ONLY_KINDS:
            return
        if kind in _AGENT_ONLY_KINDS and not self._is_agent():
            self.refused_transcriptions += 1
            if self.refused_transcriptions == 1:  # a client may send many: log the first only
                log_refusal(self.room_name, self.identity, kind, "only agents (token kind) publish transcriptions")
            return
        if kind == "transcription" and not packet.transcription.track_id.startswith(TRACK_PREFIX):
            # The official SDKs panic on a transcription whose track sid is not a track sid.
            logger.info("participant %s: transcription without a track sid dropped", self.identity)
            return
        destinations = set(packet.destination_identities)
        packet.participant_identity = self.identity
        packet.participant_sid = self.sid
        if kind == "user":
            packet.user.participant_identity = self.identity
            packet.user.participant_sid = self.sid
            destinations.update(packet.user.destination_identities)
        payload = packet.SerializeToString()
        for identity, relay in self._recipients():
            if destinations and identity not in destinations:
                continue
            relay.deliver(label, payload)

    def deliver(self, label: str, payload: bytes) -> None:
        """Send ``payload`` to this participant on its channel ``label`` (dropped while that is not open)."""
        channel = self._receive_channels.get(label)
        if channel is None:
            return
        try:
            if channel.ready_state == "open":
                channel.send(payload)
        except (ConnectionError, NotImplementedError):
            pass
