"""Fixtures for the frame tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kitewire.frames import _libyuv


@pytest.fixture(scope="module", params=["libyuv", "opencv"])
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a module's tests once with libyuv (when installed) and once with OpenCV/numpy only."""
    use_libyuv = request.param == "libyuv"
    if use_libyuv and not _libyuv.available():
        pytest.skip("libyuv shared library (Debian package libyuv0) is not installed")
    previous = _libyuv.set_enabled(use_libyuv)
    try:
        yield request.param
    finally:
        _libyuv.set_enabled(previous)
