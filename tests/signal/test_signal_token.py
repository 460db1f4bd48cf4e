from __future__ import annotations

import time

import jwt
import pytest
from kitewire.signal import TokenError, create_token, parse_keys, verify_token
from livekit import api

pytestmark = pytest.mark.timeout(30)

KEYS = {"devkey": "secret", "other": "othersecret"}


def test_roundtrip_claims() -> None:
    token = create_token("devkey", "secret", identity="alice", room="r1", name="Alice", can_publish=False)
    claims = verify_token(token, KEYS)
    assert claims.identity == "alice"
    assert claims.api_key == "devkey"
    assert claims.name == "Alice"
    assert claims.video.room == "r1"
    assert claims.video.room_join is True
    assert claims.video.can_publish is False
    assert claims.video.can_subscribe is True


def test_official_livekit_api_token_verifies() -> None:
    token = (
        api.AccessToken("other", "othersecret")
        .with_identity("bob")
        .with_name("Bob")
        .with_grants(api.VideoGrants(room_join=True, room="r2", can_publish_data=False))
        .to_jwt()
    )
    claims = verify_token(token, KEYS)
    assert claims.identity == "bob"
    assert claims.video.room == "r2"
    assert claims.video.can_publish_data is False


def test_our_token_readable_by_livekit_api() -> None:
    token = create_token("devkey", "secret", identity="carol", room="r3")
    grants = api.TokenVerifier("devkey", "secret").verify(token)
    assert grants.identity == "carol"
    assert grants.video is not None and grants.video.room == "r3" and grants.video.room_join


def test_wrong_secret_refused() -> None:
    token = create_token("devkey", "not-the-secret", identity="a", room="r")
    with pytest.raises(TokenError, match="signature"):
        verify_token(token, KEYS)


def test_unknown_key_refused() -> None:
    token = create_token("nokey", "secret", identity="a", room="r")
    with pytest.raises(TokenError, match="unknown API key"):
        verify_token(token, KEYS)


def test_expired_refused() -> None:
    token = create_token("devkey", "secret", identity="a", room="r", ttl=-60)
    with pytest.raises(TokenError, match="expired"):
        verify_token(token, KEYS)


def test_not_before_refused() -> None:
    token = create_token("devkey", "secret", identity="a", room="r", not_before=time.time() + 3600, ttl=7200)
    with pytest.raises(TokenError, match="not valid yet"):
        verify_token(token, KEYS)


def test_garbage_and_alg_none_refused() -> None:
    with pytest.raises(TokenError):
        verify_token("garbage", KEYS)
    with pytest.raises(TokenError):
        verify_token("", KEYS)
    unsigned = jwt.encode({"iss": "devkey", "sub": "a", "video": {"roomJoin": True}}, key="", algorithm="none")
    with pytest.raises(TokenError, match="HS256"):
        verify_token(unsigned, KEYS)


def test_bad_grant_types_refused() -> None:
    token = jwt.encode({"iss": "devkey", "sub": "a", "video": {"roomJoin": "yes"}}, "secret", algorithm="HS256")
    with pytest.raises(TokenError, match="roomJoin"):
        verify_token(token, KEYS)


def test_parse_keys() -> None:
    assert parse_keys("devkey: secret") == {"devkey": "secret"}
    assert parse_keys("a: 1, b:2\nc : 3") == {"a": "1", "b": "2", "c": "3"}
    with pytest.raises(ValueError, match="key: secret"):
        parse_keys("nocolon")
    with pytest.raises(ValueError):
        parse_keys("")
