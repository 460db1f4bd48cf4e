"""Bounds on what one signal request may ask of the server, and the refusals that name them.

Sizes follow livekit-server's defaults where it has one (names 256 bytes,
attributes 64 KiB in total); metadata is held to 64 KiB rather than
livekit's 512 KiB because every ParticipantInfo sent to every participant
carries it.
"""

from __future__ import annotations

import math

from livekit.protocol import rtc as pb_rtc

__all__ = [
    "MAX_ATTRIBUTES_BYTES",
    "MAX_CANDIDATES_PER_SESSION",
    "MAX_CANDIDATE_BYTES",
    "MAX_CID_BYTES",
    "MAX_EARLY_CANDIDATES",
    "MAX_LAYERS",
    "MAX_METADATA_BYTES",
    "MAX_NAME_BYTES",
    "MAX_PERMISSION_ENTRIES",
    "MAX_ROOMS",
    "MAX_SEND_DATA_BYTES",
    "MAX_SIDS_PER_REQUEST",
    "MAX_SIMULCAST_CODECS",
    "MAX_TWIRP_BODY_BYTES",
    "OFFERS_PER_SECOND",
    "OFFER_BURST",
    "TWIRP_BODY_SECONDS",
    "RateLimit",
    "add_track_problem",
    "metadata_update_problem",
    "refusal",
]

#: Participant and track names, in UTF-8 bytes (livekit: max_participant_name_length).
MAX_NAME_BYTES = 256
#: A track's client id and stream name, in UTF-8 bytes.
MAX_CID_BYTES = 256
#: A participant's metadata, in UTF-8 bytes.
MAX_METADATA_BYTES = 64 * 1024
#: All of a participant's attribute keys and values together, in UTF-8 bytes (livekit: max_attributes_size).
MAX_ATTRIBUTES_BYTES = 64 * 1024
#: Simulcast layers one track may describe (three are used; four leaves room).
MAX_LAYERS = 4
#: Codecs one track may be offered in.
MAX_SIMULCAST_CODECS = 4
#: Remote ICE candidates one session takes; later ones are ignored (each adds connectivity checks).
MAX_CANDIDATES_PER_SESSION = 64
#: One trickled candidate's JSON, in bytes.
MAX_CANDIDATE_BYTES = 2048
#: Track sids one subscription or track-settings request may name.
MAX_SIDS_PER_REQUEST = 256
#: Candidates held for a connection that has no offer yet.
MAX_EARLY_CANDIDATES = 64
#: Participants one SubscriptionPermission may name (each with up to MAX_SIDS_PER_REQUEST track sids).
MAX_PERMISSION_ENTRIES = 256
#: Rooms the server API may hold open at once (rooms opened by joins are bounded by the connection caps).
MAX_ROOMS = 4096
#: One server-API request body, in bytes (an HTTP request is refused past this, unread).
MAX_TWIRP_BODY_BYTES = 1024 * 1024
#: Seconds a server-API request may take to send its body.
TWIRP_BODY_SECONDS = 10.0
#: The payload of one SendData call, in bytes: one data packet on the reliable channel.
MAX_SEND_DATA_BYTES = 60 * 1024
#: Offers a client may send at once; each costs a parse and an answer of up to 512 m-lines.
#: A session publishing and unpublishing by hand sends a few; 32 leaves room for bursts of them.
OFFER_BURST = 32
#: Offers per second a client may keep sending after a burst.
OFFERS_PER_SECOND = 2.0


class RateLimit:
    """A token bucket: ``burst`` at once, then ``per_second`` on average."""

    def __init__(self, burst: int, per_second: float) -> None:
        if burst < 1 or not per_second > 0 or math.isinf(per_second):
            raise ValueError(f"RateLimit: expected burst >= 1 and 0 < per_second < inf, got {burst}, {per_second}")
        self.burst = burst
        self.per_second = per_second
        self._tokens = float(burst)
        self._last: float | None = None

    def take(self, now: float) -> bool:
        """Spend one token at monotonic time ``now``; False when none is left."""
        if self._last is not None:
            self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._last) * self.per_second)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def add_track_problem(request: pb_rtc.AddTrackRequest) -> str | None:
    """Why ``request`` is over a bound (None when it is within all of them)."""
    if _size(request.cid) > MAX_CID_BYTES:
        return f"add_track: expected a cid of at most {MAX_CID_BYTES} bytes, got {_size(request.cid)}"
    if _size(request.name) > MAX_NAME_BYTES:
        return f"add_track: expected a track name of at most {MAX_NAME_BYTES} bytes, got {_size(request.name)}"
    if _size(request.stream) > MAX_CID_BYTES:
        return f"add_track: expected a stream name of at most {MAX_CID_BYTES} bytes, got {_size(request.stream)}"
    if len(request.layers) > MAX_LAYERS:
        return f"add_track: expected at most {MAX_LAYERS} layers, got {len(request.layers)}"
    if len(request.simulcast_codecs) > MAX_SIMULCAST_CODECS:
        return f"add_track: expected at most {MAX_SIMULCAST_CODECS} codecs, got {len(request.simulcast_codecs)}"
    for codec in request.simulcast_codecs:
        if len(codec.layers) > MAX_LAYERS:
            return f"add_track: expected at most {MAX_LAYERS} layers per codec, got {len(codec.layers)}"
        if _size(codec.codec) > MAX_CID_BYTES or _size(codec.cid) > MAX_CID_BYTES:
            return f"add_track: expected codec names and cids of at most {MAX_CID_BYTES} bytes"
    return None


def metadata_update_problem(update: pb_rtc.UpdateParticipantMetadata, attributes: dict[str, str]) -> str | None:
    """Why applying ``update`` to a participant with ``attributes`` would exceed a bound."""
    if _size(update.name) > MAX_NAME_BYTES:
        return f"update_metadata: expected a name of at most {MAX_NAME_BYTES} bytes, got {_size(update.name)}"
    if _size(update.metadata) > MAX_METADATA_BYTES:
        return f"update_metadata: expected metadata of at most {MAX_METADATA_BYTES} bytes, got {_size(update.metadata)}"
    merged = dict(attributes)
    for key, value in update.attributes.items():
        if value:
            merged[key] = value
        else:
            merged.pop(key, None)
    total = sum(_size(key) + _size(value) for key, value in merged.items())
    if total > MAX_ATTRIBUTES_BYTES:
        return f"update_metadata: expected attributes of at most {MAX_ATTRIBUTES_BYTES} bytes in all, got {total}"
    return None


def refusal(
    reason: str,
    code: int = pb_rtc.RequestResponse.NOT_ALLOWED,
    *,
    request_id: int = 0,
    add_track_cid: str = "",
) -> pb_rtc.SignalResponse:
    """A RequestResponse refusing a request.

    It never echoes the request: a refused request may be as large as a signal
    frame, and echoing it lets a client make the server send what it sent. An
    add_track refusal carries only the (bounded) cid, which is what clients
    match the refusal to; others carry the request id the client chose.
    """
    response = pb_rtc.SignalResponse()
    answer = response.request_response
    answer.reason = code  # type: ignore[assignment]
    answer.message = reason
    answer.request_id = request_id
    if add_track_cid:
        answer.add_track.cid = add_track_cid.encode("utf-8")[:MAX_CID_BYTES].decode("utf-8", "ignore")
    return response
