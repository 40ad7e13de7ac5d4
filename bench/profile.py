#!/usr/bin/python3
"""profile.py: where bridgehead's time goes under the benchmark's load.

Starts the benchmark's bridgehead instance (the same configuration and
queue file system as run.py, empty queue), records it with `perf record -e cpu-clock
--call-graph dwarf` while loadgen runs one scenario, and prints a summary:

  - the share of CPU samples per thread kind: the event loop (the main
    thread: TLS, SMTP, replies) and the others (queue commit workers);
  - the functions of bridgehead, OpenSSL, libevent and libc that are on
    the stack most often (inclusive, so callers include their callees);
  - the system calls, inclusive of everything the kernel does under them;
  - a few kernel functions that matter for a queue on disk.

cpu-clock counts time on a CPU only: time blocked in fsync waiting for the
disk is not in it (that is latency, which loadgen reports).  The raw data
stays in bench/build/profile/perf.data for `perf report -i`.

Usage: profile.py --bridgehead BIN [--scenario tls-20] [--seconds 8]
Python standard library only; needs perf and root.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import time

import run as bench

KERNEL_SPOTS = [
    "__ext4_new_inode", "recently_deleted", "ext4_sync_file",
    "ext4_add_entry", "__ext4_find_entry", "tcp_sendmsg", "tcp_recvmsg",
]


def parse_perf_script(text):
    """[(tid, [(symbol, dso), ...leaf first])] from `perf script -F tid,ip,sym,dso`."""
    samples = []
    cur = None
    tid = None
    frame = re.compile(r"\s*[0-9a-f]+ (.*) \((.*)\)$")
    for line in text.splitlines():
        if not line.strip():
            if cur is not None:
                samples.append((tid, cur))
            cur = None
            continue
        if line.strip().isdigit():      # the sample's header: its tid
            tid = int(line)
            cur = []
            continue
        m = frame.match(line)
        if m and cur is not None:
            cur.append((m.group(1).split("+")[0], m.group(2)))
    if cur:
        samples.append((tid, cur))
    return samples


def summarize(samples, main_tid, top):
    n = len(samples)
    if n == 0:
        return "no samples (is perf allowed to trace? kernel.perf_event_paranoid)"
    out = []
    loop = sum(1 for t, _ in samples if t == main_tid)
    out.append("samples: %d; event loop thread %.1f%%, other threads %.1f%%"
               % (n, 100.0 * loop / n, 100.0 * (n - loop) / n))
    user = collections.Counter()
    sysc = collections.Counter()
    kern = collections.Counter()
    for t, stack in samples:
        kind = "loop" if t == main_tid else "worker"
        seen_u, seen_k = set(), set()
        for sym, dso in stack:
            if "kernel" in dso:
                if sym not in seen_k:
                    seen_k.add(sym)
                    if sym.startswith("__x64_sys_"):
                        sysc[(kind, sym[len("__x64_sys_"):])] += 1
                    if sym in KERNEL_SPOTS:
                        kern[sym] += 1
            elif sym != "[unknown]" and (kind, sym) not in seen_u:
                seen_u.add((kind, sym))
                user[(kind, sym)] += 1
    skip = {"_start", "__libc_start_call_main", "__libc_start_main_impl",
            "main", "start_thread", "clone3", "event_base_loop"}
    out.append("\nfunctions on the stack (inclusive), by thread kind:")
    shown = 0
    for (kind, sym), c in user.most_common():
        if sym in skip:
            continue
        out.append("  %5.1f%%  %-6s %s" % (100.0 * c / n, kind, sym))
        shown += 1
        if shown >= top:
            break
    out.append("\nsystem calls (inclusive of the kernel work under them):")
    for (kind, sym), c in sysc.most_common(12):
        out.append("  %5.1f%%  %-6s %s" % (100.0 * c / n, kind, sym))
    out.append("\nkernel functions of interest (inclusive):")
    for sym in KERNEL_SPOTS:
        out.append("  %5.1f%%  %s" % (100.0 * kern[sym] / n, sym))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bridgehead", required=True, metavar="BIN")
    ap.add_argument("--scenario", default="tls-20",
                    choices=[s["name"] for s in bench.SCENARIOS])
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--fs", choices=["loop", "host"], default="loop",
                    help="where the queue lives, as for run.py (loop)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("profile.py: run as root")
    outdir = os.path.join(bench.BUILD, "profile")
    os.makedirs(outdir, exist_ok=True)
    data = os.path.join(outdir, "perf.data")
    sc = next(s for s in bench.SCENARIOS if s["name"] == a.scenario)

    qfs = bench.QueueFS(a.fs)
    qfs.setup()
    bh = bench.Bridgehead(a.bridgehead, "root", qfs)
    try:
        bh.setup()
        pid = bh.fresh_start()
        time.sleep(0.5)
        perf = subprocess.Popen(
            ["perf", "record", "-q", "-e", "cpu-clock", "-F", "999",
             "--call-graph", "dwarf,16384", "-p", str(pid), "-o", data,
             "--", "sleep", str(a.seconds + 1)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        lg = bench.run(bench.loadgen_args(sc, bench.BH_PORT, a.seconds, 0))
        perf_err = perf.communicate()[1]
        if perf.returncode != 0:
            sys.exit("profile.py: perf record failed: %s" % perf_err.strip())
    finally:
        bh.cleanup()
        qfs.teardown()
    print(lg.stdout.strip())
    script = subprocess.run(["perf", "script", "-i", data, "-F", "tid,ip,sym,dso"],
                            capture_output=True, text=True, check=False)
    print(summarize(parse_perf_script(script.stdout), pid, a.top))
    print("\nraw data: perf report -i %s" % data)


if __name__ == "__main__":
    try:
        main()
    except bench.BenchError as e:
        sys.exit("profile.py: %s" % e)
