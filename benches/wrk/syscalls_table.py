#!/usr/bin/env python3
"""System calls per request, per thread, from floor.sh's SWITCHBOARD_BENCH_SYSCALLS files.

    python3 benches/wrk/syscalls_table.py DIR/*.txt

Each file is `requests N` followed by `perf trace -s` output; prints, per file,
each thread's calls per request, the most frequent first.
"""
import re
import sys


def per_request(path):
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    reqs = max(int(lines[0].split()[1]), 1)
    threads, thread = {}, None
    for line in lines[1:]:
        m = re.match(r"\s*(\S+) \((\d+)\), (\d+) events", line)
        if m:
            thread = m.group(1)
            continue
        m = re.match(r"\s+(\w+)\s+(\d+)\s+(\d+)\s+[\d.]+", line)
        if m and thread:
            calls = threads.setdefault(thread, {})
            calls[m.group(1)] = calls.get(m.group(1), 0) + int(m.group(2))
    return reqs, threads


for path in sys.argv[1:]:
    reqs, threads = per_request(path)
    print(f"{path}: {reqs} requests")
    for thread, calls in sorted(threads.items()):
        total = sum(calls.values()) / reqs
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:8]
        print(f"  {thread:<16} {total:5.2f} a request: " + ", ".join(f"{k} {v / reqs:.2f}" for k, v in top))
