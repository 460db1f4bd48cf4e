"""LiveKit access tokens: HS256 JWTs carrying a ``video`` grant.

A token is signed with the secret of one API key; the key's name travels in
the ``iss`` claim so a server holding several keys knows which secret to check
with. The participant's identity is the ``sub`` claim.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import jwt
from google.protobuf import json_format
from livekit.protocol import room as pb_room

__all__ = [
    "DEV_API_KEY",
    "DEV_API_SECRET",
    "AccessClaims",
    "TokenError",
    "VideoGrant",
    "create_body_token",
    "create_token",
    "parse_keys",
    "verify_token",
]

#: The key pair ``livekit-server --dev`` accepts; ``kitewire serve --dev`` uses the same.
DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"

DEFAULT_TTL = timedelta(hours=6)

# Clock skew tolerated on exp/nbf, as between two machines' clocks.
_LEEWAY_SECONDS = 10


@contextlib.contextmanager
def _short_secrets_allowed() -> Iterator[None]:
    # LiveKit's dev secret is "secret"; PyJWT warns on every use of such a key,
    # which would flood logs without telling the operator anything new.
    with warnings.catch_warnings():
        category = getattr(jwt, "InsecureKeyLengthWarning", None)
        if category is not None:
            warnings.simplefilter("ignore", category)
        yield


class TokenError(ValueError):
    """A token was refused; ``reason`` says why and ``status`` is the HTTP code to answer with."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# VideoGrant field -> JSON name inside the token's ``video`` claim.
_VIDEO_JSON_NAMES: dict[str, str] = {
    "room_join": "roomJoin",
    "room": "room",
    "can_publish": "canPublish",
    "can_subscribe": "canSubscribe",
    "can_publish_data": "canPublishData",
    "can_publish_sources": "canPublishSources",
    "can_update_own_metadata": "canUpdateOwnMetadata",
    "hidden": "hidden",
    "room_create": "roomCreate",
    "room_admin": "roomAdmin",
    "room_list": "roomList",
    "agent": "agent",
}


@dataclasses.dataclass(frozen=True)
class VideoGrant:
    """The ``video`` claim: what the bearer may do in which room.

    Field names follow livekit's Python naming; ``to_claims`` / ``from_claims``
    convert to and from the camelCase JSON inside the token.
    """

    room_join: bool = False
    room: str = ""
    can_publish: bool = True
    can_subscribe: bool = True
    can_publish_data: bool = True
    can_publish_sources: tuple[str, ...] = ()
    can_update_own_metadata: bool = False
    hidden: bool = False
    room_create: bool = False
    room_admin: bool = False
    room_list: bool = False
    #: The bearer is an agent (a worker on ``/agent``, or a participant joining for a job).
    agent: bool = False

    def to_claims(self) -> dict[str, Any]:
        """The JSON object stored under ``video`` in the token."""
        claims: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            if field.name.startswith("_"):
                continue
            value = getattr(self, field.name)
            if field.name == "can_publish_sources":
                if value:
                    claims["canPublishSources"] = list(value)
                continue
            claims[_VIDEO_JSON_NAMES[field.name]] = value
        return claims

    @classmethod
    def from_claims(cls, video: Mapping[str, Any]) -> VideoGrant:
        """Read a ``video`` claim. Absent permission flags mean allowed, as in LiveKit."""

        def flag(name: str, default: bool) -> bool:
            value = video.get(name, default)
            if value is None:
                return default
            if not isinstance(value, bool):
                raise TokenError(f"video.{name} must be a boolean, got {value!r}")
            return value

        room = video.get("room", "")
        if not isinstance(room, str):
            raise TokenError(f"video.room must be a string, got {room!r}")
        sources = video.get("canPublishSources") or []
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise TokenError(f"video.canPublishSources must be a list of strings, got {sources!r}")
        return cls(
            room_join=flag("roomJoin", False),
            room=room,
            can_publish=flag("canPublish", True),
            can_subscribe=flag("canSubscribe", True),
            can_publish_data=flag("canPublishData", True),
            can_publish_sources=tuple(sources),
            can_update_own_metadata=flag("canUpdateOwnMetadata", False),
            hidden=flag("hidden", False),
            room_create=flag("roomCreate", False),
            room_admin=flag("roomAdmin", False),
            room_list=flag("roomList", False),
            agent=flag("agent", False),
        )


@dataclasses.dataclass(frozen=True)
class AccessClaims:
    """A verified token's content."""

    api_key: str
    identity: str
    video: VideoGrant
    name: str = ""
    metadata: str = ""
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    kind: str = ""
    expires_at: float = 0.0
    not_before: float = 0.0
    #: The ``roomConfig`` claim: settings for the room this token joins (applied like CreateRoom).
    room_config: pb_room.RoomConfiguration | None = None


def create_token(
    api_key: str,
    api_secret: str,
    *,
    identity: str,
    room: str,
    name: str = "",
    metadata: str = "",
    attributes: Mapping[str, str] | None = None,
    ttl: timedelta | float = DEFAULT_TTL,
    can_publish: bool = True,
    can_subscribe: bool = True,
    can_publish_data: bool = True,
    room_join: bool = True,
    hidden: bool = False,
    not_before: float | None = None,
    kind: str = "",
    grant: VideoGrant | None = None,
) -> str:
    """Sign a join token for ``identity`` in ``room``.

    ``ttl`` is a timedelta or seconds; ``not_before`` defaults to now. ``kind``
    is the participant kind claim (``"agent"``, ...). ``grant``, when given, is
    the whole video grant and the permission flags above are not used.
    """
    if not api_key or not api_secret:
        raise ValueError(f"expected a non-empty api key and secret, got key={api_key!r}")
    if not identity:
        raise ValueError("expected a non-empty identity, got ''")
    ttl_seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    now = time.time()
    nbf = int(now if not_before is None else not_before)
    grant = grant or VideoGrant(
        room_join=room_join,
        room=room,
        can_publish=can_publish,
        can_subscribe=can_subscribe,
        can_publish_data=can_publish_data,
        hidden=hidden,
    )
    payload: dict[str, Any] = {
        "iss": api_key,
        "sub": identity,
        "nbf": nbf,
        "exp": int(now + ttl_seconds),
        "video": grant.to_claims(),
    }
    if name:
        payload["name"] = name
    if metadata:
        payload["metadata"] = metadata
    if attributes:
        payload["attributes"] = dict(attributes)
    if kind:
        payload["kind"] = kind
    with _short_secrets_allowed():
        return jwt.encode(payload, api_secret, algorithm="HS256")


def verify_token(token: str, keys: Mapping[str, str], *, now: float | None = None) -> AccessClaims:
    """Check ``token`` against ``keys`` (API key -> secret) and return its claims.

    Raises ``TokenError`` (a ``ValueError``) with the reason when the token is
    malformed, signed by an unknown key or wrong secret, expired or not yet valid.
    Room-level checks (``roomJoin``, ``room``) are the caller's: see
    ``AccessClaims.video``.
    """
    if not token:
        raise TokenError("missing access token")
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError(f"malformed access token: {exc}") from None
    if header.get("alg") != "HS256":
        raise TokenError(f"expected an HS256 token, got alg={header.get('alg')!r}")
    api_key = unverified.get("iss")
    if not isinstance(api_key, str) or not api_key:
        raise TokenError("access token has no iss (API key) claim")
    secret = keys.get(api_key)
    if secret is None:
        raise TokenError(f"unknown API key {api_key!r}")
    current = time.time() if now is None else now
    try:
        # exp/nbf are checked by hand below so that `now` can be injected.
        with _short_secrets_allowed():
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_aud": False, "verify_iat": False},
            )
    except jwt.InvalidSignatureError:
        raise TokenError("invalid token signature (wrong secret for this API key)") from None
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid access token: {exc}") from None
    exp = claims.get("exp")
    nbf = claims.get("nbf")
    if exp is not None:
        if not isinstance(exp, (int, float)):
            raise TokenError(f"exp must be a number, got {exp!r}")
        if current > exp + _LEEWAY_SECONDS:
            raise TokenError("access token has expired")
    if nbf is not None:
        if not isinstance(nbf, (int, float)):
            raise TokenError(f"nbf must be a number, got {nbf!r}")
        if current + _LEEWAY_SECONDS < nbf:
            raise TokenError("access token is not valid yet (nbf in the future)")
    video = claims.get("video") or {}
    if not isinstance(video, dict):
        raise TokenError(f"video claim must be an object, got {video!r}")
    identity = claims.get("sub", "")
    if not isinstance(identity, str):
        raise TokenError(f"sub must be a string, got {identity!r}")
    attributes = claims.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise TokenError(f"attributes must be an object, got {attributes!r}")
    return AccessClaims(
        room_config=_room_config(claims.get("roomConfig")),
        api_key=api_key,
        identity=identity,
        video=VideoGrant.from_claims(video),
        name=str(claims.get("name") or ""),
        metadata=str(claims.get("metadata") or ""),
        attributes={str(k): str(v) for k, v in attributes.items()},
        kind=str(claims.get("kind") or ""),
        expires_at=float(exp or 0),
        not_before=float(nbf or 0),
    )


def _room_config(value: Any) -> pb_room.RoomConfiguration | None:
    """The ``roomConfig`` claim (RoomConfiguration in protobuf JSON, as livekit-api writes it)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TokenError(f"roomConfig must be an object, got {value!r}")
    config = pb_room.RoomConfiguration()
    try:
        json_format.ParseDict(value, config, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise TokenError(f"roomConfig: expected a RoomConfiguration, got {exc}") from None
    return config


def parse_keys(text: str) -> dict[str, str]:
    """Parse ``"key: secret"`` pairs, separated by commas or newlines, into a dict.

    This is the form ``livekit-server --keys`` and ``LIVEKIT_KEYS`` take.
    """
    keys: dict[str, str] = {}
    for chunk in text.replace("\n", ",").split(","):
        chunk = chunk.strip()
        if not chunk:
            continue
        key, sep, secret = chunk.partition(":")
        if not sep or not key.strip() or not secret.strip():
            raise ValueError(f"expected 'key: secret', got {chunk!r}")
        keys[key.strip()] = secret.strip()
    if not keys:
        raise ValueError(f"expected at least one 'key: secret' pair, got {text!r}")
    return keys


def create_body_token(api_key: str, api_secret: str, body_sha256: str, *, ttl: float = 300.0) -> str:
    """Sign a token that vouches for one request body (a webhook's ``Authorization`` header).

    ``body_sha256`` is the base64 SHA-256 digest of the body; it travels in the
    ``sha256`` claim, which livekit's ``WebhookReceiver`` compares with the body it got.
    """
    if not api_key or not api_secret:
        raise ValueError(f"expected a non-empty api key and secret, got key={api_key!r}")
    now = int(time.time())
    payload = {"iss": api_key, "nbf": now, "exp": now + int(ttl), "sha256": body_sha256}
    with _short_secrets_allowed():
        return jwt.encode(payload, api_secret, algorithm="HS256")
