"""Packet loss for tests: nftables drops a share of the UDP arriving in the suite's own network namespace.

Only inside the private namespace tests/conftest.py makes (recognised by its
veth ``kwtest0``): a test must never change the host's firewall. Elsewhere the
test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kitewire.bench.loss import udp_loss

_TEST_INTERFACE = "kwtest0"


def _interfaces() -> set[str]:
    # /proc/self/net follows the calling process's namespace (/sys/class/net would
    # show the one sysfs was mounted in)
    try:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    except OSError:
        return set()
    return {line.split(":", 1)[0].strip() for line in lines}


def lossy_namespace_available() -> str | None:
    """None when loss can be made here, else why not."""
    if _TEST_INTERFACE not in _interfaces():
        return "not in the suite's private network namespace (needs root on Linux)"
    if os.geteuid() != 0 or (shutil.which("nft") is None and not Path("/usr/sbin/nft").exists()):
        return "nftables (nft) is not installed"
    return None


@contextlib.contextmanager
def dropping_udp(percent: int) -> Iterator[None]:
    """Drop ``percent`` % of all UDP (media and RTCP, every direction) while the block runs."""
    reason = lossy_namespace_available()
    if reason is not None:
        pytest.skip(reason)
    with udp_loss(percent):
        yield
