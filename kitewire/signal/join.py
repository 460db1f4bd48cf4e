"""Join URLs: how a client asks a LiveKit server to join a room.

Two forms exist:

* ``/rtc/v1?join_request=<base64url WrappedJoinRequest>`` with the token in
  ``Authorization: Bearer``; livekit's Rust core (the Python SDK 1.x) uses it.
  The wrapped ``JoinRequest`` may be gzip-compressed and often carries the
  publisher's first offer.
* legacy ``/rtc?access_token=...&auto_subscribe=1&sdk=js&protocol=..``, used by
  livekit-client (JS) and older SDKs.

Both are parsed into one ``JoinParams``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import zlib
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit

from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

__all__ = [
    "PROTOCOL_VERSION",
    "JoinParams",
    "build_join_url",
    "decode_join_request",
    "encode_join_request",
    "parse_join_request",
    "validate_url",
    "websocket_base_url",
]

#: Signal protocol version we speak (the one livekit 1.2.1 sends).
PROTOCOL_VERSION = 16

# A join request with an SDP offer is a few kB; a gzip bomb must not be.
_MAX_JOIN_REQUEST_BYTES = 256 * 1024


@dataclasses.dataclass
class JoinParams:
    """What a join URL says, whichever form it came in.

    ``join_request`` is always filled in: for the legacy form it is built from
    the query parameters (without a publisher offer).
    """

    token: str
    join_request: pb_rtc.JoinRequest
    legacy: bool

    @property
    def auto_subscribe(self) -> bool:
        """Whether the client wants every track subscribed as it is published."""
        return self.join_request.connection_settings.auto_subscribe

    @property
    def reconnect(self) -> bool:
        """Whether this is a resume of an earlier session."""
        return self.join_request.reconnect


def encode_join_request(request: pb_rtc.JoinRequest, *, compress: bool = True) -> str:
    """Wrap ``request`` in a ``WrappedJoinRequest`` and return it base64url-encoded."""
    raw = request.SerializeToString()
    wrapped = pb_rtc.WrappedJoinRequest()
    if compress:
        wrapped.compression = pb_rtc.WrappedJoinRequest.GZIP
        wrapped.join_request = gzip.compress(raw)
    else:
        wrapped.compression = pb_rtc.WrappedJoinRequest.NONE
        wrapped.join_request = raw
    return base64.urlsafe_b64encode(wrapped.SerializeToString()).decode("ascii").rstrip("=")


def _b64decode_any(value: str) -> bytes:
    # A '+' that reached us unescaped in a query string was decoded as a space.
    text = value.strip().replace(" ", "+")
    # Accept both alphabets (livekit's SDKs have used each) with or without padding.
    standard = text.replace("-", "+").replace("_", "/")
    padded = standard + "=" * (-len(standard) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"join_request: expected base64url, got undecodable text ({exc})") from None


def decode_join_request(value: str) -> pb_rtc.JoinRequest:
    """Inverse of ``encode_join_request``; raises ``ValueError`` on malformed input."""
    if len(value) > _MAX_JOIN_REQUEST_BYTES * 2:
        raise ValueError(f"join_request: expected at most {_MAX_JOIN_REQUEST_BYTES * 2} characters, got {len(value)}")
    raw = _b64decode_any(value)
    wrapped = pb_rtc.WrappedJoinRequest()
    try:
        wrapped.ParseFromString(raw)
    except Exception as exc:  # protobuf raises DecodeError, a plain Exception subclass
        raise ValueError(
            f"join_request: expected a WrappedJoinRequest protobuf, got undecodable bytes ({exc})"
        ) from None
    data = wrapped.join_request
    if wrapped.compression == pb_rtc.WrappedJoinRequest.GZIP:
        try:
            # Bounded decompression so a small bomb cannot allocate gigabytes.
            decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = decomp.decompress(data, _MAX_JOIN_REQUEST_BYTES + 1)
        except zlib.error as exc:
            raise ValueError(f"join_request: expected gzip data, got {exc}") from None
        if len(data) > _MAX_JOIN_REQUEST_BYTES:
            raise ValueError(f"join_request: expected at most {_MAX_JOIN_REQUEST_BYTES} bytes once decompressed")
    elif wrapped.compression != pb_rtc.WrappedJoinRequest.NONE:
        raise ValueError(f"join_request: expected compression NONE or GZIP, got {wrapped.compression}")
    request = pb_rtc.JoinRequest()
    try:
        request.ParseFromString(data)
    except Exception as exc:
        raise ValueError(f"join_request: expected a JoinRequest protobuf, got undecodable bytes ({exc})") from None
    return request


def websocket_base_url(url: str) -> str:
    """Normalize a server URL to ``ws(s)://host[:port][/prefix]`` without a trailing slash."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"expected a ws://, wss://, http:// or https:// URL, got {url!r}")
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def default_client_info() -> pb_models.ClientInfo:
    """ClientInfo kitewire's own client sends."""
    from kitewire import __version__

    info = pb_models.ClientInfo()
    info.sdk = pb_models.ClientInfo.PYTHON
    info.version = __version__
    info.protocol = PROTOCOL_VERSION
    info.os = "kitewire"
    return info


def build_join_url(
    url: str,
    token: str,
    join_request: pb_rtc.JoinRequest | None = None,
    *,
    legacy: bool = False,
    compress: bool = True,
) -> tuple[str, dict[str, str]]:
    """Return ``(websocket_url, headers)`` for a join.

    With ``legacy=False`` the v1 form is used and the token goes in an
    ``Authorization`` header; with ``legacy=True`` the token and settings go in
    the query string and any publisher offer in ``join_request`` is dropped
    (the legacy form cannot carry it).
    """
    base = websocket_base_url(url)
    request = join_request if join_request is not None else pb_rtc.JoinRequest()
    if not request.HasField("client_info"):
        request.client_info.CopyFrom(default_client_info())
    if legacy:
        settings = request.connection_settings
        query: dict[str, str] = {
            "access_token": token,
            "auto_subscribe": "1" if settings.auto_subscribe else "0",
            "adaptive_stream": "1" if settings.adaptive_stream else "0",
            "sdk": "python",
            "version": request.client_info.version,
            "protocol": str(request.client_info.protocol or PROTOCOL_VERSION),
        }
        if request.reconnect:
            query["reconnect"] = "1"
            if request.participant_sid:
                query["sid"] = request.participant_sid
        return f"{base}/rtc?{urlencode(query)}", {}
    query = {"join_request": encode_join_request(request, compress=compress)}
    return f"{base}/rtc/v1?{urlencode(query)}", {"Authorization": f"Bearer {token}"}


def validate_url(url: str, token: str, *, legacy: bool = False) -> tuple[str, dict[str, str]]:
    """The HTTP(S) URL and headers of the ``/rtc[/v1]/validate`` endpoint for ``token``."""
    base = websocket_base_url(url).replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    if legacy:
        return f"{base}/rtc/validate?{urlencode({'access_token': token})}", {}
    return f"{base}/rtc/v1/validate", {"Authorization": f"Bearer {token}"}


_TRUE = {"1", "true", "yes", "on"}


def _bearer(headers: Mapping[str, str]) -> str:
    auth = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    return ""


def parse_join_request(path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> JoinParams:
    """Parse an incoming join (server side) from its path, query parameters and headers.

    ``path`` is ``/rtc``, ``/rtc/v1`` (or the ``/validate`` variants). The token
    is taken from ``Authorization: Bearer`` first, then ``access_token``.
    Raises ``ValueError`` naming the bad parameter.
    """
    token = _bearer(headers) or query.get("access_token", "")
    encoded = query.get("join_request")
    if encoded:
        request = decode_join_request(encoded)
        return JoinParams(token=token, join_request=request, legacy=False)
    if path.rstrip("/").endswith("/v1") or "/v1/" in path:
        # /rtc/v1 without join_request: allowed for validate, otherwise an empty join.
        request = pb_rtc.JoinRequest()
        request.connection_settings.auto_subscribe = True
        return JoinParams(token=token, join_request=request, legacy=False)
    request = pb_rtc.JoinRequest()
    settings = request.connection_settings
    settings.auto_subscribe = query.get("auto_subscribe", "1").lower() in _TRUE
    settings.adaptive_stream = query.get("adaptive_stream", "0").lower() in _TRUE
    request.reconnect = query.get("reconnect", "0").lower() in _TRUE
    request.participant_sid = query.get("sid", "")
    info = request.client_info
    sdk_name = query.get("sdk", "").upper().replace("-", "_")
    sdk_value = {
        "JS": pb_models.ClientInfo.JS,
        "PYTHON": pb_models.ClientInfo.PYTHON,
        "RUST": pb_models.ClientInfo.RUST,
        "GO": pb_models.ClientInfo.GO,
        "SWIFT": pb_models.ClientInfo.SWIFT,
        "ANDROID": pb_models.ClientInfo.ANDROID,
        "FLUTTER": pb_models.ClientInfo.FLUTTER,
        "UNITY": pb_models.ClientInfo.UNITY,
        "REACT_NATIVE": pb_models.ClientInfo.REACT_NATIVE,
    }.get(sdk_name)
    if sdk_value is not None:
        info.sdk = sdk_value
    info.version = query.get("version", "")
    protocol = query.get("protocol", "")
    if protocol:
        try:
            info.protocol = int(protocol)
        except ValueError:
            raise ValueError(f"protocol: expected an integer, got {protocol!r}") from None
    info.os = query.get("os", "")
    info.browser = query.get("browser", "")
    return JoinParams(token=token, join_request=request, legacy=True)
