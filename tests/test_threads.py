"""Where the query encoder's threads run (retrieval/threads.py)."""

from __future__ import annotations

import os
import threading

import pytest

from retrieval.threads import MAX_THREADS, CpuLayout, cpu_layout, held_on

affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or
                              len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")


def test_one_thread_per_physical_core_with_the_asker_on_the_first() -> None:
    assert cpu_layout({0, 1}, {}) == CpuLayout(2, "2", frozenset({0}))
    # Hyper-threads: logical CPUs 0 and 2 share a core, 1 and 3 the other.
    smt = {0: (0, 0), 1: (0, 1), 2: (0, 0), 3: (0, 1)}
    assert cpu_layout({0, 1, 2, 3}, smt) == CpuLayout(2, "2,4", frozenset({0, 2}))
    # A container limited to CPUs 5 and 7: onnxruntime counts processors from 1.
    assert cpu_layout({5, 7}, {}) == CpuLayout(2, "8", frozenset({5}))


def test_one_core_gets_one_thread_and_many_are_capped() -> None:
    assert cpu_layout({3}, {}) == CpuLayout(1, "", frozenset())
    assert cpu_layout({0, 1}, {0: (0, 0), 1: (0, 0)}).threads == 1  # two hyper-threads
    many = cpu_layout(set(range(16)), {})
    assert many.threads == MAX_THREADS
    assert many.affinities == ";".join(str(c) for c in range(2, MAX_THREADS + 1))


def test_this_machine_has_a_layout() -> None:
    layout = cpu_layout()
    assert layout.threads >= 1 and (layout.threads == 1) == (not layout.caller)


@affinity
def test_held_on_pins_inside_and_restores_after_even_on_error() -> None:
    before = os.sched_getaffinity(0)
    first = frozenset({min(before)})
    with held_on(first):
        assert os.sched_getaffinity(0) == first
    assert os.sched_getaffinity(0) == before
    with pytest.raises(ValueError), held_on(first):
        raise ValueError("a failing question")
    assert os.sched_getaffinity(0) == before


@affinity
def test_held_on_leaves_a_thread_the_application_pinned_elsewhere() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    seen: list[set[int]] = []

    def worker() -> None:  # affinity is per thread: the test's own thread is untouched
        os.sched_setaffinity(0, {cpus[1]})
        with held_on(frozenset({cpus[0]})):
            seen.append(os.sched_getaffinity(0))
        seen.append(os.sched_getaffinity(0))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [{cpus[1]}, {cpus[1]}]
    assert os.sched_getaffinity(0) == set(cpus)
