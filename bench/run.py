#!/usr/bin/python3
"""run.py: the intake benchmark, bridgehead against Postfix, in one run.

For each scenario (STARTTLS or plain text, 20 clients or 1, 10 messages
per connection or 1) it runs several rounds; in every round both relays
take the same load from bench/build/bin/loadgen, one after the other, the
order alternating from round to round (A B, B A, ...) so that neither
always gets the warmer machine.  Before each measurement the relay is
stopped, its queue emptied and started again, so every round starts from
an empty queue and fresh processes.

Per measurement it records:
  - messages per second accepted (final dot -> 250), latency p50/p99,
    from loadgen;
  - CPU: user+sys of every process of the relay (the process tree under
    the relay's top process, reaped children included through cutime and
    cstime), from just before the load until the relay is idle again
    after it, divided by the messages accepted;
  - memory: the largest sum of Pss (/proc/PID/smaps_rollup) over the tree,
    sampled every 0.5 s during the load.

It also measures the load client's ceiling against bench/build/bin/sink,
prints a table of medians with the ratio bridgehead/Postfix, and keeps the
raw figures in bench/build/results/.  Python standard library only; run
as root (Postfix's start needs it).  --help for the knobs.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("BENCH_BUILD", os.path.join(HERE, "build"))
BIN = os.path.join(BUILD, "bin")
LOADGEN = os.path.join(BIN, "loadgen")
SINK = os.path.join(BIN, "sink")
PF_SCRIPT = os.path.join(HERE, "postfix-instance.sh")

BH_PORT = int(os.environ.get("BH_PORT", "27025"))
PF_PORT = int(os.environ.get("PF_PORT", "27026"))
SINK_PORT = int(os.environ.get("SINK_PORT", "27027"))

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    """A set-up or run failure, said in one sentence."""


# ------------------------------------------------------------ /proc

def proc_stat(pid):
    """(ppid, utime+stime, cutime+cstime) in ticks, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return ppid, utime + stime, cutime + cstime


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def tree(root):
    """root and every descendant, with their stat lines."""
    stats = {}
    children = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st is None:
            continue
        stats[pid] = st
        children.setdefault(st[0], []).append(pid)
    if root not in stats:
        return {}
    out = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        out[pid] = stats[pid]
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_ticks(root):
    """CPU of the tree: own time of every live process plus what each has
    reaped (a child that exits is counted once, in its parent's cutime)."""
    return sum(own + reaped for _, own, reaped in tree(root).values())


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss_kib(root):
    return sum(pss_kib(pid) for pid in tree(root))


def machine_ticks():
    """(busy, total) CPU ticks of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]          # idle + iowait
    total = sum(v[:8])          # up to steal; guest time is inside user
    return total - idle, total


def settle_before(root, limit, threshold=0.15, step=0.5):
    """Before a measurement: wait until the relay has finished starting
    (its tree used no CPU for `step` s) and the machine is nearly idle --
    other work would be measured as the relay's slowness -- at most
    `limit` s for the latter.  Returns the machine's busy fraction."""
    deadline = time.monotonic() + limit
    hard = time.monotonic() + limit + 10
    cpu = tree_cpu_ticks(root)
    while True:
        b0, t0 = machine_ticks()
        time.sleep(step)
        b1, t1 = machine_ticks()
        now = tree_cpu_ticks(root)
        busy = (b1 - b0) / max(1, t1 - t0)
        relay_idle = now - cpu <= 1
        cpu = now
        if relay_idle and (busy < threshold or time.monotonic() >= deadline):
            return busy
        if time.monotonic() >= hard:
            return busy
        if relay_idle:
            log("  machine busy (%.0f%%), waiting" % (busy * 100))


def children_cpu_ms():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ru.ru_utime + ru.ru_stime) * 1000.0


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_idle(root, settle=0.5, limit=15.0):
    """Wait until the tree used no CPU for `settle` seconds (the relay's
    work after the last 250: queue manager, logs), at most `limit`."""
    deadline = time.monotonic() + limit
    last = tree_cpu_ticks(root)
    while time.monotonic() < deadline:
        time.sleep(settle)
        now = tree_cpu_ticks(root)
        if now - last <= 1:
            return
        last = now


def run(cmd, **kw):
    return subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)


# ------------------------------------------------------------- relays

class QueueFS:
    """The file system both relays keep their queues on, and its trash.

    "loop" (the default): a fresh ext4, made for this run with mkfs.ext4's
    defaults (so with a journal, like a real server's /var), on a loop
    device over a sparse file in bench/build/, with direct I/O so the
    host's page cache is not in the way.  Both relays start from the same
    empty file system, and what other programs do to the host's file
    system does not change the cost of creating files here.

    "host": bench/build/ itself.  Here that is ext4 without a journal,
    where inode allocation skips (and reads from the inode table) every
    inode freed in the last 60 s, 360 s while its inode-table block is
    dirty: measured at ~95 us of CPU per file created after 20,000
    deletions instead of ~10.  Whoever deletes files there shortly before
    a run -- this benchmark's last run too -- slows down its file creation.

    Either way, queues are never deleted between runs: a used queue is
    renamed into the trash (same file system, one rename) and the trash
    goes when the whole run is over.
    """
    IMAGE_SIZE = 8 << 30        # sparse; a full default run writes ~2 GiB
    HOST_COOLDOWN_S = 370

    def __init__(self, kind):
        self.kind = kind
        self.image = os.path.join(BUILD, "queuefs.img")
        self.mnt = os.path.join(BUILD, "queuefs")
        self.stamp = os.path.join(BUILD, "trash-emptied-at")
        self.root = None
        self.seq = 0

    def setup(self):
        self.teardown()
        if self.kind == "host":
            self.root = os.path.join(BUILD, "queues")
            os.makedirs(self.root, exist_ok=True)
            self._cooldown()
            return
        os.makedirs(self.mnt, exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(self.IMAGE_SIZE)
        steps = [
            ["mkfs.ext4", "-q", "-F", "-L", "bhbench", "-i", "16384",
             "-E", "lazy_itable_init=0,lazy_journal_init=0", self.image],
            ["mount", "-o", "loop", self.image, self.mnt],
        ]
        for cmd in steps:
            r = run(cmd)
            if r.returncode != 0:
                self.teardown()
                raise BenchError("%s failed: %s (run.py --fs host uses "
                                 "bench/build/ directly)" %
                                 (cmd[0], (r.stderr or r.stdout).strip()))
        # Direct I/O on the loop device, when the kernel allows it.
        dev = self._loop_devices()
        for d in dev:
            run(["losetup", "--direct-io=on", d])
        self.root = self.mnt

    def describe(self):
        if self.kind == "host":
            fs = run(["findmnt", "-no", "FSTYPE", "--target", self.root]).stdout
            return "queues on the host's %s (bench/build)" % fs.strip()
        return "queues on a fresh journaled ext4 (loop device)"

    def _loop_devices(self):
        r = run(["losetup", "-n", "-O", "NAME", "-j", self.image])
        return r.stdout.split() if r.returncode == 0 else []

    def teardown(self):
        if os.path.ismount(self.mnt):
            r = run(["umount", self.mnt])
            if r.returncode != 0:
                raise BenchError("cannot unmount %s: %s" %
                                 (self.mnt, r.stderr.strip()))
        for d in self._loop_devices():
            run(["losetup", "-d", d])
        if os.path.exists(self.image):
            os.unlink(self.image)
        if self.kind == "host" and self.root:
            self.empty_trash()

    def trash_slot(self, what):
        self.seq += 1
        trash = os.path.join(self.root, "trash")
        os.makedirs(trash, exist_ok=True)
        return os.path.join(trash, "%s-%d" % (what, self.seq))

    def move_to_trash(self, path, what):
        if os.path.lexists(path):
            os.rename(path, self.trash_slot(what))

    def empty_trash(self):
        trash = os.path.join(self.root, "trash")
        if os.path.isdir(trash):
            shutil.rmtree(trash, ignore_errors=True)
            with open(self.stamp, "w") as f:
                f.write("%f\n" % time.time())

    def _cooldown(self):
        """On the host file system: wait until the last run's deletions
        are old enough not to slow file creation (see above)."""
        try:
            with open(self.stamp) as f:
                age = time.time() - float(f.read().strip())
        except (OSError, ValueError):
            return
        if 0 <= age < self.HOST_COOLDOWN_S:
            wait = self.HOST_COOLDOWN_S - age
            log("waiting %.0f s: the last run deleted its queues %.0f s ago, "
                "and freshly freed inodes make file creation slow here" %
                (wait, age))
            time.sleep(wait)


class Postfix:
    name = "postfix"
    port = PF_PORT

    def __init__(self, keytype, nodelivery, qfs):
        self.keytype = keytype
        self.nodelivery = nodelivery
        self.qfs = qfs
        self.queue = os.path.join(qfs.root, "postfix-queue")

    def _script(self, *args):
        env = dict(os.environ, PF_PORT=str(PF_PORT), BENCH_BUILD=BUILD,
                   PF_NODELIVERY=self.nodelivery, PF_QUEUE=self.queue)
        r = run(["bash", PF_SCRIPT] + list(args), env=env)
        if r.returncode != 0:
            raise BenchError("postfix-instance.sh %s failed: %s" %
                             (" ".join(args), (r.stderr or r.stdout).strip()))
        return r.stdout.strip()

    def setup(self):
        self._script("setup", self.keytype)

    def fresh_start(self):
        self._script("stop")
        self._script("set-aside", self.qfs.trash_slot("postfix"))
        self._truncate_log()
        self._script("start")
        return int(self._script("pid"))

    def stop(self):
        self._script("stop")

    def cleanup(self):
        self._script("stop")
        self._script("set-aside", self.qfs.trash_slot("postfix"))

    def queued(self):
        qdir = self.queue
        n = 0
        for sub in ("incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(qdir, sub)):
                n += len(files)
        return n

    def _truncate_log(self):
        path = os.path.join(BUILD, "postfix", "log", "maillog")
        if os.path.exists(path):
            os.truncate(path, 0)


class Bridgehead:
    name = "bridgehead"
    port = BH_PORT

    def __init__(self, binary, user, qfs):
        self.bin = os.path.abspath(binary)
        self.qfs = qfs
        self.dir = os.path.join(BUILD, "bridgehead")
        self.conf = os.path.join(self.dir, "bridgehead.conf")
        self.state = os.path.join(qfs.root, "bridgehead-state")
        self.user = user
        self.proc = None
        self.logf = None

    def _cli(self, *args, check=True):
        r = run([self.bin, "-c", self.conf] + list(args))
        if check and r.returncode != 0:
            raise BenchError("bridgehead %s failed (exit %d): %s" %
                             (" ".join(args), r.returncode,
                              (r.stderr or r.stdout).strip()))
        return r

    def setup(self):
        os.makedirs(self.state, exist_ok=True)
        os.makedirs(self.dir, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(BH_CONF % {"state": self.state, "port": BH_PORT,
                               "user": self.user})
        self._chown_state()
        self._cli("config", "check")
        # The certificate is made once; its key type decides Postfix's.
        if not self._has_cert():
            self._cli("cert", "selfsign", "--fqdn", "bh.bench.example.net")
            self._chown_state()

    def _chown_state(self):
        if os.geteuid() != 0 or self.user == "root":
            return
        import pwd
        pw = pwd.getpwnam(self.user)
        for top, dirs, files in os.walk(self.state):
            for n in [top] + [os.path.join(top, x) for x in dirs + files]:
                os.lchown(n, pw.pw_uid, pw.pw_gid)

    def _has_cert(self):
        r = self._cli("cert", "show", "--json", check=False)
        return r.returncode == 0 and '"subject"' in r.stdout

    def cert_path(self):
        """The installed certificate's PEM, found under state_dir/pki/."""
        pki = os.path.join(self.state, "pki")
        for top, _, files in os.walk(pki):
            for fn in sorted(files):
                if fn.endswith((".pem", ".crt", ".cer")) and "key" not in fn:
                    path = os.path.join(top, fn)
                    with open(path, "rb") as f:
                        if b"BEGIN CERTIFICATE" in f.read():
                            return path
        return None

    def fresh_start(self):
        self.stop()
        self.qfs.move_to_trash(os.path.join(self.state, "queue"), "bridgehead")
        for sub in ("log",):
            d = os.path.join(self.state, sub)
            if os.path.isdir(d):
                for fn in os.listdir(d):
                    os.truncate(os.path.join(d, fn), 0)
        self.logf = open(os.path.join(self.dir, "serve.log"), "w")
        self.proc = subprocess.Popen(
            [self.bin, "-c", self.conf, "serve", "--foreground"],
            stdout=self.logf, stderr=subprocess.STDOUT,
            start_new_session=True)
        if not wait_port(BH_PORT, 15, self.proc):
            self.stop()
            with open(os.path.join(self.dir, "serve.log")) as f:
                tail = f.read()[-2000:]
            raise BenchError("bridgehead serve did not listen on 127.0.0.1:%d; "
                             "its log ends with:\n%s" % (BH_PORT, tail))
        return self.proc.pid

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None

    def cleanup(self):
        self.stop()
        self.qfs.move_to_trash(os.path.join(self.state, "queue"), "bridgehead")

    def attempts_delivery(self):
        """Does this build try to deliver what it queued?  One message in,
        then a look at the tracking log for anything after "received"."""
        self.fresh_start()
        try:
            r = run([LOADGEN, "--port", str(BH_PORT), "--clients", "1",
                     "--count", "1", "--json"])
            if r.returncode != 0:
                raise BenchError("bridgehead did not accept a test message: %s"
                                 % (r.stderr or r.stdout).strip()[-500:])
            path = os.path.join(self.state, "log", "tracking.jsonl")
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                time.sleep(0.25)
                try:
                    with open(path) as f:
                        events = [json.loads(line).get("event") for line in f
                                  if line.strip()]
                except (OSError, ValueError):
                    events = []
                if any(e != "received" for e in events):
                    return True
            return False
        finally:
            self.cleanup()

    def queued(self):
        n = 0
        for _, _, files in os.walk(os.path.join(self.state, "queue")):
            n += sum(1 for f in files if f.endswith(".env"))
        return n


class Sink:
    name = "sink"
    port = SINK_PORT

    def __init__(self, cert, key):
        self.cert, self.key = cert, key
        self.proc = None

    def setup(self):
        pass

    def fresh_start(self):
        self.stop()
        self.proc = subprocess.Popen(
            [SINK, "--listen", "127.0.0.1:%d" % SINK_PORT, "--threads", "1",
             "--cert", self.cert, "--key", self.key],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(SINK_PORT, 5, self.proc):
            raise BenchError("the sink did not start on port %d" % SINK_PORT)
        return self.proc.pid

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None

    def cleanup(self):
        self.stop()

    def queued(self):
        return None


BH_CONF = """\
# bridgehead instance for the intake benchmark (generated by bench/run.py).
[server]
name = bh.bench.example.net
state_dir = %(state)s
accepted_domains = example.com
relay_networks = 127.0.0.0/8
user = %(user)s

[queue]
# Delivery goes nowhere (a closed port) and is not retried during a run.
retry_schedule = 1h
queue_lifetime = 5d

[listener bench]
address = 127.0.0.1:%(port)d
tls = offer

[connector nowhere]
address_space = *
smart_hosts = [127.0.0.1]:1
tls = none
"""


# -------------------------------------------------------- measurement

def loadgen_args(sc, port, seconds, warmup):
    args = [LOADGEN, "--port", str(port), "--clients", str(sc["clients"]),
            "--messages-per-connection", str(sc["per_conn"]),
            "--duration", str(seconds), "--warmup", str(warmup),
            "--size", "4096", "--json", "--label", sc["name"]]
    if sc["tls"]:
        args.append("--starttls")
    return args


def measure(relay, sc, seconds, warmup, quiet_wait):
    """One run of one scenario against one relay, from a fresh start."""
    root = relay.fresh_start()
    busy_before = settle_before(root, quiet_wait)
    cpu0 = tree_cpu_ticks(root)
    peak = tree_pss_kib(root)
    m0 = machine_ticks()
    lg0 = children_cpu_ms()
    t0 = time.monotonic()
    lg = subprocess.Popen(loadgen_args(sc, relay.port, seconds, warmup),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    while lg.poll() is None:
        peak = max(peak, tree_pss_kib(root))
        time.sleep(0.5)
    out, err = lg.communicate()
    lg_ms = children_cpu_ms() - lg0
    wait_idle(root, settle=0.3)
    cpu1 = tree_cpu_ticks(root)
    m1 = machine_ticks()
    wall = time.monotonic() - t0
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError("loadgen against %s gave no result: %s" %
                         (relay.name, (err or out).strip()[-500:]))
    total = res["accepted"] + res["warmup_accepted"] + res["late"]
    res["relay"] = relay.name
    res["server_cpu_ms"] = (cpu1 - cpu0) * 1000.0 / CLK_TCK
    res["server_cpu_ms_per_msg"] = res["server_cpu_ms"] / total if total else None
    res["server_pss_peak_kib"] = peak
    res["messages_total"] = total
    res["wall_s"] = wall
    # What else ran meanwhile: all busy time minus the relay and loadgen,
    # as a share of the machine (all cores).
    machine_ms = (m1[0] - m0[0]) * 1000.0 / CLK_TCK
    capacity_ms = (m1[1] - m0[1]) * 1000.0 / CLK_TCK
    other = max(0.0, machine_ms - res["server_cpu_ms"] - lg_ms)
    res["background_busy"] = other / capacity_ms if capacity_ms else 0
    res["busy_before"] = busy_before
    res["queued_after"] = relay.queued()
    if res["errors"]:
        kinds = ", ".join("%s x%d" % (k["kind"], k["count"])
                          for k in res["error_kinds"])
        log("  %s: %d errors: %s" % (relay.name, res["errors"], kinds))
    return res


SCENARIOS = [
    # name, STARTTLS, clients, messages per connection, main?
    {"name": "tls-20", "tls": True, "clients": 20, "per_conn": 10, "main": True},
    {"name": "plain-20", "tls": False, "clients": 20, "per_conn": 10},
    {"name": "tls-1", "tls": True, "clients": 1, "per_conn": 10},
    {"name": "tls-20-reconnect", "tls": True, "clients": 20, "per_conn": 1},
]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results):
    """Medians per (scenario, relay)."""
    out = {}
    for r in results:
        out.setdefault((r["label"], r["relay"]), []).append(r)
    summary = {}
    for key, rs in out.items():
        summary[key] = {
            "rounds": len(rs),
            "rate": med([r["rate"] for r in rs]),
            "rate_min": min(r["rate"] for r in rs),
            "rate_max": max(r["rate"] for r in rs),
            "p50": med([r["lat_p50_ms"] for r in rs]),
            "p99": med([r["lat_p99_ms"] for r in rs]),
            "cpu": med([r["server_cpu_ms_per_msg"] for r in rs]),
            "client_cpu": med([r["client_cpu_ms_per_msg"] for r in rs]),
            "pss_mib": med([r["server_pss_peak_kib"] / 1024.0 for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "background": max(r["background_busy"] for r in rs),
            "resumed": sum(r["tls_resumed"] for r in rs),
            "handshakes": sum(r["tls_handshakes"] for r in rs),
        }
    return summary


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(summary, scenarios, relays):
    lines = []
    head = ("| scenario | relay | msgs/s (median) | min–max | p50 ms | p99 ms "
            "| CPU ms/msg | peak Pss MiB | resumed/handshakes | errors "
            "| other load (max) |")
    lines.append(head)
    lines.append("|" + "---|" * 11)
    for sc in scenarios:
        for relay in relays:
            if relay == "sink":
                continue
            s = summary.get((sc["name"], relay))
            if s is None:
                continue
            hs = "%d/%d" % (s["resumed"], s["handshakes"]) if sc["tls"] else "-"
            lines.append("| %s | %s | %s | %s–%s | %s | %s | %s | %s | %s | %d | %.0f%% |" % (
                sc["name"], relay, fmt(s["rate"], ".0f"),
                fmt(s["rate_min"], ".0f"), fmt(s["rate_max"], ".0f"),
                fmt(s["p50"], ".2f"), fmt(s["p99"], ".2f"),
                fmt(s["cpu"], ".3f"), fmt(s["pss_mib"], ".1f"), hs,
                s["errors"], s["background"] * 100))
    lines.append("")
    lines.append("| scenario | bridgehead/Postfix msgs/s | CPU ms/msg bridgehead vs Postfix "
                 "| peak Pss MiB bridgehead vs Postfix |")
    lines.append("|---|---|---|---|")
    for sc in scenarios:
        b = summary.get((sc["name"], "bridgehead"))
        p = summary.get((sc["name"], "postfix"))
        if b is None or p is None:
            continue
        ratio = b["rate"] / p["rate"] if p["rate"] else None
        lines.append("| %s | %s | %s vs %s | %s vs %s |" % (
            sc["name"], fmt(ratio, ".2f"), fmt(b["cpu"], ".3f"),
            fmt(p["cpu"], ".3f"), fmt(b["pss_mib"], ".1f"),
            fmt(p["pss_mib"], ".1f")))
    ceil = [(sc, summary.get((sc["name"], "sink"))) for sc in scenarios]
    ceil = [(sc, s) for sc, s in ceil if s is not None]
    if ceil:
        lines.append("")
        lines.append("| load client ceiling (loadgen → sink) | msgs/s | p50 ms | loadgen CPU ms/msg |")
        lines.append("|---|---|---|---|")
        for sc, s in ceil:
            lines.append("| %s | %s | %s | %s |" % (
                sc["name"], fmt(s["rate"], ".0f"), fmt(s["p50"], ".2f"),
                fmt(s["client_cpu"], ".3f")))
    return "\n".join(lines)


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    fs = run(["findmnt", "-no", "FSTYPE,SOURCE", "--target", BUILD]).stdout.strip()
    return {"date": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%a %b %d %H:%M:%S UTC %Y"),
            "nproc": os.cpu_count(), "cpu": model,
            "kernel": platform.release(), "host_filesystem": fs}


def keytype_of(cert):
    """ec:p256 / ec:p384 / rsa:N for a PEM certificate, via openssl."""
    r = run(["openssl", "x509", "-in", cert, "-noout", "-text"])
    text = r.stdout
    if "id-ecPublicKey" in text:
        if "P-384" in text or "secp384r1" in text:
            return "ec:p384"
        return "ec:p256"
    for bits in ("4096", "3072", "2048"):
        if "Public-Key: (%s bit)" % bits in text:
            return "rsa:" + bits
    raise BenchError("cannot tell the key type of %s" % cert)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bridgehead", metavar="BIN",
                    help="the bridgehead binary to measure")
    ap.add_argument("--no-bridgehead", action="store_true",
                    help="measure Postfix and the sink only")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds of the main scenario (5)")
    ap.add_argument("--duration", type=float, default=10,
                    help="measured seconds per run of the main scenario (10)")
    ap.add_argument("--other-rounds", type=int, default=3,
                    help="rounds of the other scenarios (3)")
    ap.add_argument("--other-duration", type=float, default=3,
                    help="measured seconds per run of the others and of "
                    "the sink (3)")
    ap.add_argument("--warmup", type=float, default=1,
                    help="unmeasured seconds before each run (1)")
    ap.add_argument("--only", action="append", metavar="SCENARIO",
                    help="run only these scenarios (%s)" %
                    ", ".join(s["name"] for s in SCENARIOS))
    ap.add_argument("--quiet-wait", type=float, default=2,
                    help="seconds to wait for an idle machine before each "
                    "run (2; the load of other work is reported either way)")
    ap.add_argument("--postfix-nodelivery", default="auto",
                    choices=["auto", "dead-host", "defer-transports", "hold"],
                    help="how Postfix keeps mail from leaving (auto: "
                    "dead-host when bridgehead attempts delivery of what it "
                    "queued, like Postfix would; hold when it does not)")
    ap.add_argument("--fs", choices=["loop", "host"], default="loop",
                    help="where the queues live: a fresh journaled ext4 on "
                    "a loop device (loop, the default) or bench/build/ on "
                    "the host's file system (host)")
    ap.add_argument("--user", default=os.environ.get("BH_USER", "root"),
                    help="[server] user of the bridgehead instance (root)")
    a = ap.parse_args()
    if not a.no_bridgehead and not a.bridgehead:
        ap.error("give --bridgehead BIN or --no-bridgehead")
    if a.bridgehead and not os.access(a.bridgehead, os.X_OK):
        ap.error("%s is not an executable" % a.bridgehead)
    if a.rounds < 1 or a.other_rounds < 1:
        ap.error("rounds must be at least 1")
    return a


def main():
    a = parse_args()
    if os.geteuid() != 0:
        raise BenchError("run as root: Postfix's start needs it")
    for tool in (LOADGEN, SINK):
        if not os.access(tool, os.X_OK):
            raise BenchError("%s is missing: run 'make -C bench tools'" % tool)
    scenarios = [s for s in SCENARIOS if not a.only or s["name"] in a.only]
    if not scenarios:
        raise BenchError("no scenario matches --only")

    qfs = QueueFS(a.fs)
    qfs.setup()
    try:
        return measure_all(a, scenarios, qfs)
    finally:
        qfs.teardown()


def measure_all(a, scenarios, qfs):
    keytype = "ec:p256"
    relays = []
    bh = None
    if not a.no_bridgehead:
        bh = Bridgehead(a.bridgehead, a.user, qfs)
        bh.setup()
        cert = bh.cert_path()
        if cert:
            keytype = keytype_of(cert)
        relays.append(bh)
    mode = a.postfix_nodelivery
    if mode == "auto":
        delivers = bh.attempts_delivery() if bh else True
        mode = "dead-host" if delivers else "hold"
        log("bridgehead %s queued mail: Postfix runs with delivery off by %s"
            % ("tries to deliver" if delivers else "does not deliver", mode))
    pf = Postfix(keytype, mode, qfs)
    log("setting up Postfix (certificate %s, like bridgehead's)" % keytype)
    pf.setup()
    relays.append(pf)
    pf_dir = os.path.join(BUILD, "postfix", "tls")
    sink = Sink(os.path.join(pf_dir, "cert.pem"), os.path.join(pf_dir, "key.pem"))

    results = []
    try:
        for sc in scenarios:
            main_sc = sc.get("main", False)
            rounds = a.rounds if main_sc else a.other_rounds
            seconds = a.duration if main_sc else a.other_duration
            log("sink ceiling, %s" % sc["name"])
            results.append(measure(sink, sc, a.other_duration, a.warmup,
                                   a.quiet_wait))
            sink.stop()
            for rnd in range(rounds):
                order = relays if rnd % 2 == 0 else list(reversed(relays))
                for relay in order:
                    r = measure(relay, sc, seconds, a.warmup, a.quiet_wait)
                    r["round"] = rnd + 1
                    results.append(r)
                    relay.stop()
                    log("%s round %d %-10s %7.1f msgs/s  p99 %6.2f ms  "
                        "cpu %.3f ms/msg  pss %.1f MiB  errors %d  "
                        "other load %.0f%%" % (
                            sc["name"], rnd + 1, relay.name, r["rate"],
                            r["lat_p99_ms"], r["server_cpu_ms_per_msg"] or 0,
                            r["server_pss_peak_kib"] / 1024.0, r["errors"],
                            r["background_busy"] * 100))
    finally:
        # Stop everything and leave no queued mail behind.
        for relay in relays + [sink]:
            try:
                relay.cleanup()
            except BenchError as e:
                log("cleanup: %s" % e)

    summary = summarize(results)
    names = [r.name for r in relays] + ["sink"]
    info = machine()
    text = table(summary, scenarios, names)
    header = ("%s — %d × %s, kernel %s; %s; Postfix delivery off by %s\n" % (
        info["date"], info["nproc"], info["cpu"], info["kernel"],
        qfs.describe(), mode))
    print()
    print(header)
    print(text)
    outdir = os.path.join(BUILD, "results")
    os.makedirs(outdir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    with open(os.path.join(outdir, stamp + ".json"), "w") as f:
        json.dump({"machine": info, "args": vars(a), "queues": qfs.describe(),
                   "postfix_nodelivery": mode, "results": results}, f,
                  indent=1)
    with open(os.path.join(outdir, stamp + ".md"), "w") as f:
        f.write(header + "\n" + text + "\n")
    with open(os.path.join(outdir, "latest.md"), "w") as f:
        f.write(header + "\n" + text + "\n")
    log("\nraw figures: %s" % os.path.join(outdir, stamp + ".json"))
    bad = [r for r in results if r["errors"] or r["accepted"] == 0]
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print("run.py: %s" % e, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
