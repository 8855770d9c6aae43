#!/usr/bin/env python3
"""Reads `perf script` output of `sched:sched_switch` events recorded with
call graphs and counts the stacks of the switches that went to sleep in a
futex (a lock or a condition variable), by thread name and their first
frames above the locking library; prints the most frequent first."""
import collections
import re
import sys

SKIP = re.compile(r"futex|syscall|parking_lot|lock_api|std::sys::|__schedule|schedule|entry_SYSCALL|do_syscall|__x64_sys|"
                  r"\[unknown\]|core::ops::function|std::thread::|lll_lock|pthread_|__GI_|finish_task_switch")
counts = collections.Counter()
comm, frames = None, []


def flush():
    if comm is None or not any("futex" in f for f in frames):
        return
    ours = [f for f in frames if not SKIP.search(f)][:8]
    counts[(comm, tuple(ours))] += 1


for line in sys.stdin:
    line = line.rstrip("\n")
    if not line.strip():
        flush()
        comm, frames = None, []
    elif not line.startswith((" ", "\t")):
        comm = line.split()[0]
    else:
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            frames.append(re.sub(r"\s*\(.*\)$", "", parts[1]))
flush()
for (thread, stack), n in counts.most_common(15):
    print(f"{n:6d}  {thread}")
    for f in stack:
        print(f"          {f}")
