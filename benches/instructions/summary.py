"""Summarises benches/instructions/request.sh's callgrind files as Markdown.

usage: summary.py OUT_DIR REQUESTS COMMIT NAME=BINARY...

OUT_DIR holds one callgrind file per thread and dump (`--separate-threads`);
the dumps taken after the measured requests are read, the program-termination
ones skipped. Each thread is the fold (`engine::ledger::fold::run`), the lane
(it runs hyper's server dispatcher: the gateway's lane or the bare proxy's)
or other.
"""
import collections
import glob
import os
import re
import sys
import time

out_dir, requests, commit, *variants = sys.argv[1:]
requests = int(requests)
names = [v.split("=", 1)[0] for v in variants]


def parse(path):
    """(trigger, exclusive cost by function, inclusive cost by (caller, callee))."""
    ids = {}
    excl = collections.Counter()
    calls = collections.Counter()
    trigger = ""
    fn = callee = None
    pending = False

    def name(tok):
        m = re.match(r"\((\d+)\)(?: (.*))?", tok)
        if not m:
            return tok
        if m.group(2):
            ids[m.group(1)] = m.group(2)
        return ids.get(m.group(1), m.group(1))

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("desc: Trigger:"):
                trigger = line.split(":", 2)[2].strip()
            elif line.startswith("fn="):
                fn = name(line[3:])
            elif line.startswith("cfn="):
                callee = name(line[4:])
            elif line.startswith("calls="):
                pending = True
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                parts = line.split()
                if len(parts) < 2:
                    continue
                cost = int(parts[1])
                if pending:
                    calls[(fn, callee)] += cost
                    pending = False
                else:
                    excl[fn] += cost
    return trigger, excl, calls


def kind(excl, calls):
    fns = set(excl) | {c for _, c in calls}
    if any("ledger::fold::run" in f for f in fns):
        return "fold"
    # The thread that serves HTTP: the gateway's lane, or the bare proxy's.
    if any("hyper::proto::h1::dispatch::Dispatcher" in f for f in fns):
        return "lane"
    return "other"


per = {}
for n in names:
    sums = collections.Counter()
    lane_excl = collections.Counter()
    lane_calls = collections.Counter()
    for path in sorted(glob.glob(os.path.join(out_dir, f"{n}.*"))):
        trigger, excl, calls = parse(path)
        if "termination" in trigger.lower():
            continue
        k = kind(excl, calls)
        sums[k] += sum(excl.values())
        if k == "lane":
            lane_excl.update(excl)
            lane_calls.update(calls)
    per[n] = (sums, lane_excl, lane_calls)

print(f"`benches/instructions/request.sh {requests}` at commit {commit}, "
      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: instructions (callgrind `Ir`) per request, "
      f"{requests} plain chat completions one after another on one keep-alive connection"
      + (", each with a fresh Idempotency-Key" if os.environ.get("SWITCHBOARD_BENCH_KEYED") else "")
      + "; `serve --lanes 1`.")
print()
print("| variant | lane (the request's path) | fold thread | other threads | all | lane ÷ first | all ÷ first |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
first = per[names[0]][0]
for n in names:
    s = per[n][0]
    total = sum(s.values())
    def ratio(a, b):
        return f"{a / b:.3f}×" if b else "—"
    print(f"| {n} | {s['lane'] / requests:,.0f} | {s['fold'] / requests:,.0f} | {s['other'] / requests:,.0f} | "
          f"{total / requests:,.0f} | {ratio(s['lane'], first['lane'])} | {ratio(total, sum(first.values()))} |")
for n in names:
    _, excl, calls = per[n]
    lane = sum(excl.values()) or 1
    print()
    print(f"The lane's costliest functions in `{n}` (exclusive instructions per request, the caller that spends most on it):")
    print()
    print("| instructions | share | function | called most from |")
    print("| ---: | ---: | --- | --- |")
    by_callee = collections.defaultdict(collections.Counter)
    for (caller, callee), c in calls.items():
        by_callee[callee][caller] += c
    for f, c in excl.most_common(int(os.environ.get("SWITCHBOARD_BENCH_TOP", "20"))):
        top = by_callee[f].most_common(1)
        caller = top[0][0] if top else ""
        clip = lambda s: s if len(s) <= 90 else s[:87] + "..."
        print(f"| {c / requests:,.0f} | {100 * c / lane:.1f} % | `{clip(f)}` | `{clip(caller)}` |")
