"""Request ids (uint32 on the wire, 0 meaning "no answer wanted") across their wrap."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from kitewire.engine import WireClient
from kitewire.transport import PeerConnectionConfig

from .test_wire import Recorder

UINT32_MAX = 0xFFFFFFFF


async def test_request_ids_wrap_past_uint32_and_skip_zero() -> None:
    wire = WireClient(Recorder(), PeerConnectionConfig(loopback_only=True))
    wire._request_ids = itertools.count(UINT32_MAX - 2)
    ids = [wire.next_request_id() for _ in range(6)]
    assert ids == [UINT32_MAX - 2, UINT32_MAX - 1, UINT32_MAX, 1, 2, 3]


@given(start=st.integers(min_value=1, max_value=3 * UINT32_MAX), count=st.integers(min_value=1, max_value=50))
def test_request_ids_stay_in_range_from_any_start(start: int, count: int) -> None:
    counter = itertools.count(start)
    # the formula WireClient.next_request_id applies to its counter
    ids = [(next(counter) - 1) % UINT32_MAX + 1 for _ in range(count)]
    assert all(1 <= i <= UINT32_MAX for i in ids)
    assert len(set(ids)) == len(ids)  # no repeat within a window far shorter than the cycle
