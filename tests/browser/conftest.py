"""The browser check: real Chromium (Debian's ``chromium``) driven by Playwright, running livekit-client from
npm (installed into ``tests/browser/node_modules`` by ``npm ci --prefix tests/browser``, as .ci/run does),
served to the page by the test's own HTTP server on 127.0.0.1. Nothing is downloaded at test time; the
browser runs inside the suite's private network namespace (tests/conftest.py), like every other peer.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from kitewire.server import Server, ServerConfig
from playwright.async_api import Page, async_playwright

HERE = Path(__file__).parent
LIVEKIT_CLIENT = HERE / "node_modules" / "livekit-client" / "dist" / "livekit-client.umd.js"
INSTALL_HINT = "npm ci --prefix tests/browser (and apt-get install chromium)"

# As root Chromium needs --no-sandbox; the fake camera and the auto-granted permission stand in for a user;
# without mDNS obfuscation the browser's candidates carry the namespace's real address.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_path() -> str:
    """Debian's Chromium binary (the real one, not the /usr/bin shell wrapper, when present)."""
    real = Path("/usr/lib/chromium/chromium")
    if real.exists():
        return str(real)
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(f"Chromium is not installed: {INSTALL_HINT}")
    return found


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with Server(ServerConfig.dev(port=0, empty_timeout=0.5, log_level="warning")) as running:
        yield running


@pytest.fixture
async def page_url() -> AsyncIterator[str]:
    """The test page and livekit-client, served from 127.0.0.1."""
    if not LIVEKIT_CLIENT.exists():
        pytest.fail(f"livekit-client is not installed in tests/browser/node_modules: {INSTALL_HINT}")
    files = {"/": HERE / "page.html", "/page.js": HERE / "page.js", "/livekit-client.umd.js": LIVEKIT_CLIENT}

    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(files[request.path])

    app = web.Application()
    for path in files:
        app.router.add_get(path, serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


@pytest.fixture
async def page(page_url: str) -> AsyncIterator[Page]:
    """A Chromium page with the test page loaded (``window.kw`` ready)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            tab = await browser.new_page()
            await tab.goto(page_url)
            await tab.wait_for_function("window.kw !== undefined && window.LivekitClient !== undefined")
            yield tab
            await tab.evaluate("window.kw.leave()")
        finally:
            await browser.close()
