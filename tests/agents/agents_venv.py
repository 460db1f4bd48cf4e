"""The virtual environment the agent tests run livekit-agents workers in: tests/.venvs/agents.

livekit-agents pins its own ``livekit`` (1.1.x); the suite's environment keeps
livekit 1.2.x. The environment is built from ``requirements-agents.txt`` and
rebuilt only when that file changes (its hash is stamped inside). CI builds it
before the tests run (``.ci/run`` calls ``python tests/agents/agents_venv.py``),
so nothing downloads at test time; a local run builds it on first use.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["AGENTS_VENV", "LOCK_FILE", "agents_python", "ensure_agents_venv"]

_TESTS = Path(__file__).resolve().parent.parent
AGENTS_VENV = _TESTS / ".venvs" / "agents"
LOCK_FILE = Path(__file__).resolve().parent / "requirements-agents.txt"
_STAMP = AGENTS_VENV / "requirements.sha256"
# pip resolving and unpacking ~70 wheels from a local index: about 30 s here.
_INSTALL_TIMEOUT_SECONDS = 900


def agents_python() -> Path:
    """The environment's interpreter (it may not exist yet: see ensure_agents_venv)."""
    return AGENTS_VENV / "bin" / "python"


def _lock_hash() -> str:
    return hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()


def ensure_agents_venv() -> Path:
    """Build (or rebuild, if the lock file changed) the environment; returns its interpreter.

    Raises RuntimeError with pip's output when the build fails.
    """
    python = agents_python()
    wanted = _lock_hash()
    if python.exists() and _STAMP.exists() and _STAMP.read_text().strip() == wanted:
        return python
    shutil.rmtree(AGENTS_VENV, ignore_errors=True)
    steps = (
        [sys.executable, "-m", "venv", str(AGENTS_VENV)],
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(LOCK_FILE)],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_SECONDS)
        if done.returncode != 0:
            shutil.rmtree(AGENTS_VENV, ignore_errors=True)
            raise RuntimeError(
                f"building {AGENTS_VENV} failed ({' '.join(step[:4])} ...):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
    _STAMP.write_text(wanted + "\n")
    return python


if __name__ == "__main__":
    print(ensure_agents_venv())
