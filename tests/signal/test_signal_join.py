from __future__ import annotations

import base64
import gzip
from urllib.parse import parse_qs, urlsplit

import pytest
from kitewire.signal import (
    build_join_url,
    decode_join_request,
    encode_join_request,
    parse_join_request,
    websocket_base_url,
)
from livekit.protocol import rtc as pb_rtc

pytestmark = pytest.mark.timeout(30)


def _request_with_offer() -> pb_rtc.JoinRequest:
    request = pb_rtc.JoinRequest()
    request.connection_settings.auto_subscribe = False
    request.publisher_offer.type = "offer"
    request.publisher_offer.sdp = "v=0\r\n" * 200
    return request


@pytest.mark.parametrize("compress", [True, False])
def test_encode_decode_roundtrip(compress: bool) -> None:
    request = _request_with_offer()
    encoded = encode_join_request(request, compress=compress)
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert decode_join_request(encoded) == request


def test_v1_url_and_parse() -> None:
    url, headers = build_join_url("http://127.0.0.1:7880/", "tok", _request_with_offer())
    parts = urlsplit(url)
    assert parts.scheme == "ws" and parts.path == "/rtc/v1"
    assert headers == {"Authorization": "Bearer tok"}
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    params = parse_join_request(parts.path, query, headers)
    assert params.token == "tok" and not params.legacy
    assert params.auto_subscribe is False
    assert params.join_request.publisher_offer.type == "offer"


def test_legacy_url_and_parse() -> None:
    request = pb_rtc.JoinRequest()
    request.connection_settings.auto_subscribe = True
    request.publisher_offer.sdp = "dropped"
    url, headers = build_join_url("wss://example.test/prefix", "tok", request, legacy=True)
    parts = urlsplit(url)
    assert parts.scheme == "wss" and parts.path == "/prefix/rtc" and headers == {}
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    params = parse_join_request(parts.path, query, {})
    assert params.legacy and params.token == "tok" and params.auto_subscribe
    assert params.join_request.publisher_offer.sdp == ""


def test_js_style_legacy_query() -> None:
    params = parse_join_request(
        "/rtc",
        {"access_token": "t", "auto_subscribe": "0", "sdk": "js", "protocol": "15", "reconnect": "1", "sid": "PA_x"},
        {},
    )
    assert params.token == "t" and not params.auto_subscribe and params.reconnect
    assert params.join_request.client_info.protocol == 15
    assert params.join_request.participant_sid == "PA_x"
    with pytest.raises(ValueError, match="protocol"):
        parse_join_request("/rtc", {"protocol": "abc"}, {})


def test_decode_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="join_request"):
        decode_join_request("!!!not base64!!!")
    bad_gzip = pb_rtc.WrappedJoinRequest(compression=pb_rtc.WrappedJoinRequest.GZIP, join_request=b"not gzip")
    with pytest.raises(ValueError, match="gzip"):
        decode_join_request(base64.urlsafe_b64encode(bad_gzip.SerializeToString()).decode())


def test_decode_bounds_gzip_bomb() -> None:
    bomb = gzip.compress(b"\x00" * (8 * 1024 * 1024))
    wrapped = pb_rtc.WrappedJoinRequest(compression=pb_rtc.WrappedJoinRequest.GZIP, join_request=bomb)
    with pytest.raises(ValueError, match="at most"):
        decode_join_request(base64.urlsafe_b64encode(wrapped.SerializeToString()).decode())


def test_websocket_base_url() -> None:
    assert websocket_base_url("https://h:1/x/") == "wss://h:1/x"
    with pytest.raises(ValueError, match="ws://"):
        websocket_base_url("ftp://h")
