"""Which threads ran the CPU-heavy calls (see the cpu_work_threads fixture)."""

from __future__ import annotations


class CpuWorkThreads:
    """Records the thread that ran each encode, decode and frame conversion."""

    def __init__(self) -> None:
        self.calls: dict[str, list[int]] = {}

    def threads_of(self, name: str) -> set[int]:
        return set(self.calls.get(name, []))
