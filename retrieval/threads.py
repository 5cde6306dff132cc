"""Where the query encoder's threads run: one per physical core, the asking thread on the first.

onnxruntime pins its intra-op workers to cores 1..n-1 and counts on the thread that
calls ``run`` to be on core 0, but leaves that thread wherever the OS put it. When the
OS puts it on a worker's core, both spin there while core 0 idles and a question takes
2-3x as long (``benchmarks/notes.md``, session 6: 3.8 ms against 12.9 ms). So the layout
is made explicit here, from the cores this process may use, and the asking thread is
held on the first core for the length of one ``run`` only, then given back its own
affinity. Where the OS has no affinity calls, nothing is pinned.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# A question is ~20 tokens: each op's work is split in slices that more threads make too
# thin to pay for waking them (two cores here: 1.6x over one; more not measurable here).
MAX_THREADS = 4
_SYS = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class CpuLayout:
    """Threads for onnxruntime and where they run.

    Attributes:
        threads: Intra-op threads, the asking thread included (0 = onnxruntime's default).
        affinities: ``session.intra_op_thread_affinities`` for the workers ("" = not set).
        caller: Cores the asking thread is held on during a question (empty = left alone).
    """

    threads: int
    affinities: str
    caller: frozenset[int]


def cpu_layout(cpus: set[int] | None = None,
               core_of: dict[int, tuple[int, int]] | None = None) -> CpuLayout:
    """The layout for the cores this process may use.

    Args:
        cpus: Logical CPUs allowed (default: this thread's affinity).
        core_of: (package, core) of each logical CPU (default: read from sysfs); CPUs
            missing from it count as cores of their own.
    """
    if cpus is None:
        if not hasattr(os, "sched_getaffinity"):
            return CpuLayout(0, "", frozenset())
        cpus = os.sched_getaffinity(0)
    core_of = _topology(cpus) if core_of is None else core_of
    groups: dict[tuple[int, int] | int, list[int]] = {}
    for cpu in sorted(cpus):
        groups.setdefault(core_of.get(cpu, cpu), []).append(cpu)
    cores = list(groups.values())[:MAX_THREADS]
    if len(cores) < 2:
        return CpuLayout(1, "", frozenset())
    # onnxruntime numbers logical processors from 1.
    affinities = ";".join(",".join(str(c + 1) for c in core) for core in cores[1:])
    return CpuLayout(len(cores), affinities, frozenset(cores[0]))


def _topology(cpus: set[int]) -> dict[int, tuple[int, int]]:
    out = {}
    for cpu in cpus:
        try:
            top = _SYS / f"cpu{cpu}" / "topology"
            out[cpu] = (int((top / "physical_package_id").read_text()),
                        int((top / "core_id").read_text()))
        except (OSError, ValueError):
            pass
    return out


@contextlib.contextmanager
def held_on(cores: frozenset[int]) -> Iterator[None]:
    """Hold the calling thread on ``cores`` inside the block, then restore its affinity.

    Does nothing when ``cores`` is empty, already the thread's affinity, or not within it
    (the application restricted this thread; its choice stands).
    """
    saved = os.sched_getaffinity(0) if cores and hasattr(os, "sched_setaffinity") else None
    if saved is None or saved == cores or not cores <= saved:
        yield
        return
    try:
        os.sched_setaffinity(0, cores)
    except OSError:  # a core went offline, a sandbox forbids it: run where we are
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            os.sched_setaffinity(0, saved)
