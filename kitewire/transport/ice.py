"""ICE pieces: server configuration, trickle candidates in browser JSON form,
and candidate gathering restricted to loopback per connection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_REMOTE_CANDIDATES", "IceCandidateInit", "IceServer"]

#: Remote candidates one PeerConnection takes (each adds candidate pairs for ICE
#: to check); a host with a few interfaces, STUN and TURN stays far below it.
MAX_REMOTE_CANDIDATES = 64


@dataclass(frozen=True)
class IceServer:
    """A STUN/TURN server, as in the browser's RTCIceServer.

    Only used when explicitly configured; the transport never contacts a
    server on its own.
    """

    urls: list[str] = field(default_factory=list)
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class IceCandidateInit:
    """A trickle ICE candidate in the browser's RTCIceCandidateInit shape.

    LiveKit carries ``to_json()`` of this in ``TrickleRequest.candidateInit``:
    ``{"candidate": "candidate:...", "sdpMid": "0", "sdpMLineIndex": 0,
    "usernameFragment": "..."}``. An empty ``candidate`` means end-of-candidates.
    """

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The browser JSON object (camelCase keys), omitting absent fields."""
        out: dict[str, Any] = {"candidate": self.candidate}
        if self.sdp_mid is not None:
            out["sdpMid"] = self.sdp_mid
        if self.sdp_mline_index is not None:
            out["sdpMLineIndex"] = self.sdp_mline_index
        if self.username_fragment is not None:
            out["usernameFragment"] = self.username_fragment
        return out

    def to_json(self) -> str:
        """Serialise as the browser's RTCIceCandidateInit JSON."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes | dict[str, Any]) -> IceCandidateInit:
        """Parse RTCIceCandidateInit JSON (text or an already-decoded dict).

        Raises ValueError if it is not a JSON object with a string ``candidate``.
        """
        if isinstance(text, dict):
            obj: Any = text
        else:
            try:
                obj = json.loads(text)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"ICE candidate: JSON object expected, got {text[:80]!r} ({exc})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"ICE candidate: JSON object expected, got {type(obj).__name__}")
        candidate = obj.get("candidate")
        if not isinstance(candidate, str):
            raise ValueError(f"ICE candidate: string 'candidate' field expected, got {candidate!r}")
        mid = obj.get("sdpMid")
        if mid is not None and not isinstance(mid, str):
            raise ValueError(f"ICE candidate: string 'sdpMid' expected, got {mid!r}")
        index = obj.get("sdpMLineIndex")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
            raise ValueError(f"ICE candidate: non-negative integer 'sdpMLineIndex' expected, got {index!r}")
        ufrag = obj.get("usernameFragment")
        if ufrag is not None and not isinstance(ufrag, str):
            raise ValueError(f"ICE candidate: string 'usernameFragment' expected, got {ufrag!r}")
        return cls(candidate, mid, index, ufrag)
