"""kitewire's embedded LiveKit-compatible SFU.

``Server`` (async start/stop, async context manager; ``port=0`` picks a free
port, see ``Server.url``) serves LiveKit signalling on one HTTP port and
forwards RTP between participants without decoding it. ``ServerConfig``
holds its settings; ``kitewire serve`` runs it from the command line.

Facts about clients this server relies on (checked against livekit 1.2.1):

* The join path chooses the PeerConnection model. ``/rtc/v1?join_request=``
  clients use ONE PeerConnection: their JoinRequest carries an offer with
  three audio and three video recvonly m-lines plus the data channels; the
  server answers it at once, sends media on those recvonly m-lines (never
  reusing one for a second track), asks for more with
  ``MediaSectionsRequirement`` (which also makes the client offer again), names
  the tracks in ``SessionDescription.mid_to_track_id`` and opens its own
  ``_reliable``/``_lossy`` data channels on that PeerConnection. Legacy
  ``/rtc`` clients use two: the server offers the subscriber PeerConnection
  right after the JoinResponse (``subscriber_primary``).
* libwebrtc gathers host candidates on the machine's interface (192.0.2.2
  here), not on loopback; it still connects to a server whose only candidate
  is 127.0.0.1: the kernel routes between local addresses, and the server's
  ICE agent learns the client's address as a peer-reflexive candidate. The
  JoinResponse lists no ICE servers, so no STUN/TURN server is ever contacted.
* A join with ``reconnect`` (session resume) is answered with a leave asking
  for a full rejoin, which the SDK performs at once.
"""

from .config import ServerConfig
from .server import JoinRefused, Server

__all__ = ["JoinRefused", "Server", "ServerConfig"]
