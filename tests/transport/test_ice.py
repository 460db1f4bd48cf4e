"""Trickle candidate JSON in the browser's RTCIceCandidateInit shape."""

from __future__ import annotations

import json

import pytest
from kitewire.transport import IceCandidateInit


def test_round_trip_browser_json() -> None:
    text = json.dumps(
        {
            "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": "Xk3t",
        }
    )
    init = IceCandidateInit.from_json(text)
    assert init == IceCandidateInit("candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "0", 0, "Xk3t")
    assert json.loads(init.to_json()) == json.loads(text)
    assert IceCandidateInit.from_json(init.to_dict()) == init


def test_optional_fields_absent_or_null() -> None:
    init = IceCandidateInit.from_json('{"candidate": "", "sdpMid": null}')
    assert init == IceCandidateInit("")
    assert init.to_dict() == {"candidate": ""}


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "JSON object expected"),
        ("[1, 2]", "JSON object expected"),
        ('{"sdpMid": "0"}', "'candidate'"),
        ('{"candidate": "c", "sdpMLineIndex": -1}', "sdpMLineIndex"),
        ('{"candidate": "c", "sdpMLineIndex": true}', "sdpMLineIndex"),
        ('{"candidate": "c", "sdpMid": 3}', "sdpMid"),
        ('{"candidate": "c", "usernameFragment": 3}', "usernameFragment"),
    ],
)
def test_bad_json_raises_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IceCandidateInit.from_json(text)
