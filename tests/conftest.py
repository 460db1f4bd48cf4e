"""Suite-wide set-up: the tests run in a network namespace of their own.

The official livekit SDK (libwebrtc) never gathers ICE candidates on the
loopback interface: it uses the machine's own address, so through a kitewire
server bound to 127.0.0.1 its packets would go to that address. Run as root on
Linux (as CI does), the suite therefore moves itself, before any thread or
socket exists, into a fresh network namespace holding only ``lo`` and a veth
pair addressed 198.18.0.1/24 (the benchmarking range): libwebrtc gathers there,
kitewire stays on 127.0.0.1, and no test packet can reach any other host.
Elsewhere the suite runs on the shared network, still loopback only, and the
report header says so.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys

import pytest

_CLONE_NEWNET = 0x40000000
_TEST_INTERFACE_ADDRESS = "198.18.0.1/24"
_SETUP_COMMANDS = (
    ["ip", "link", "set", "lo", "up"],
    ["ip", "link", "add", "kwtest0", "type", "veth", "peer", "name", "kwtest1"],
    ["ip", "addr", "add", _TEST_INTERFACE_ADDRESS, "dev", "kwtest0"],
    ["ip", "link", "set", "kwtest0", "up"],
    ["ip", "link", "set", "kwtest1", "up"],
)


def _isolate_network() -> str:
    """Enter a private network namespace; returns a line describing the outcome."""
    if os.environ.get("KITEWIRE_TEST_SHARED_NETWORK") == "1":
        return "shared network (KITEWIRE_TEST_SHARED_NETWORK=1)"
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("ip") is None:
        return "shared network (a private namespace needs Linux, root and iproute2)"
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(_CLONE_NEWNET) != 0:
            return f"shared network (unshare failed: {os.strerror(ctypes.get_errno())})"
        try:
            for command in _SETUP_COMMANDS:
                subprocess.run(command, check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as error:
            # a namespace without a usable interface would fail every libwebrtc test:
            # go back to the shared one rather than run the suite crippled
            libc.setns(original, _CLONE_NEWNET)
            detail = getattr(error, "stderr", "") or str(error)
            return f"shared network (setting up the namespace failed: {detail.strip()})"
        return f"private network namespace: lo and a veth pair at {_TEST_INTERFACE_ADDRESS}"
    finally:
        os.close(original)


_NETWORK = _isolate_network()


def pytest_report_header(config: pytest.Config) -> str:
    return f"kitewire tests network: {_NETWORK}"
