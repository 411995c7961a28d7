"""Live mirror target under load: `intransit listen` on loopback fed a VXLAN stream, unattended.

    python bench/live_bench.py            # the whole run (~5 minutes): capacity, sender, rate search
    python bench/live_bench.py --quick    # the same in about a minute (fewer datagrams, shorter steps)
    python bench/live_bench.py --drain 200000 [--no-dissect]   # one capacity measure only (CPU time)
    python bench/live_bench.py --instructions 200000 [--no-dissect] [--tree OTHER]   # the same, in
        callgrind instructions: deterministic whatever the load (user space only: the kernel's
        recvmmsg copy is not counted), against another checkout with --tree
    python bench/live_bench.py --sustain 150 --rate 150000 [--window 60] [--tree OTHER]   # sustained
        load with distinct flows: see 4.

The traffic is the realistic generator of ../shared/bench (make_pcap.py, seed 1: TLS, HTTP, SSH,
DNS, ... conversations), each packet wrapped in VXLAN as a Traffic Mirroring session sends it.

1. Capacity of one core, apart from the load (CPU time is what is measured, never wall time):
   N datagrams are queued in the socket first (a forced 1 GiB buffer), then one in-process LiveRun
   (pinned to CPU 0) analyses them: decode, dedup, flows, dissection, per-window policy and parquet
   files. The marginal CPU per datagram is (CPU(N) - CPU(N/5)) / (N - N/5) after a warm-up run, so
   the fixed costs of a run and of a window (imports, the policy, six parquet files) are not spread
   over the datagrams. Each of recvmmsg / recvfrom_into (INTRANSIT_NO_MMSG=1), with and without
   dissection, in its own process; the ratios say what recvmmsg bought.
2. The sender: CPU per datagram of sendmmsg and of one send() per datagram (pre-built datagrams).
3. The zero-loss search: one `intransit listen` (pinned to CPU 0, its receive thread included;
   --rcvbuf 8M, the default --queue 256M of the receive thread, windows of 10 s, parquet, the
   default policy) receives steps of rising rates from this process (pinned to CPU 1, sendmmsg,
   paced in bursts of <= 1 ms). A step passes when the sender reached the rate asked (97%), nothing
   was dropped (the `drops` column of /proc/net/udp for the listener's port: the kernel's; the
   listener's status.json: its queue's) and the backlog (socket and receive queue) drained within
   1.5 s of the step's end, so a rate the listener cannot sustain fails even when its queue absorbs
   the step. Rates rise by x1.25 from --start until a step fails, then are bisected. Printed: each
   step (with the windows that closed during it: a window's close is the largest burst, and whether
   one falls inside a step is chance; the datagrams still queued at the first status after it),
   then the highest zero-loss rate and what broke first above it (the sender, the socket buffer
   or the receive queue with the listener's CPU share, or the drain). At the end the listener gets
   SIGTERM and its totals must add up: received + kernel drops == everything sent, received ==
   analysed + duplicates + filtered + queue drops.

4. Sustained load (--sustain SECONDS --rate R): what the rate search does not see. The stream is
   replayed loop after loop, each loop with a new VNI (the VNI is part of the flow key: every loop's
   flows are new ones, as a fleet of mirrored ENIs gives), for SECONDS at R datagrams/s, into one
   in-process LiveRun pinned to CPU 0 with the listener's settings (--rcvbuf 16M, the 256M receive
   queue, windows of --window seconds (60), parquet, the default policy with --vpc 10.0.0.0/8; load
   shedding as the listener's default, --no-shed, --memory-budget), the
   sender pinned to CPU 1. Printed per window: datagrams received, kernel drops, flows, flows shed,
   flows ended early by the memory budget (the total so far: mem-ended), the close's
   blocking time (the analysis thread's CPU seconds in LiveRun._close and the next window's _open,
   and wall seconds) and the datagrams queued when it began, the three longest batches (the analysis
   thread's CPU from a batch to its asking for the next, a window's close aside: the chunks of
   flows judged and written, the expiry); and the listener's process CPU per datagram analysed (its
   receive thread included), which under load is the number to compare, not the losses; and the
   garbage collector's pauses (paced as the CLI paces it). With --tree, the same listener importing
   another checkout's analyzer, before this one's.

The machine is shared with other agents: the load average is printed with each number.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if "--root" in sys.argv:  # the sustained mode's listener, importing the analyzer of another checkout
    sys.path.insert(0, str(Path(sys.argv[sys.argv.index("--root") + 1]).resolve()))
GEN = Path("/work/shared/bench/make_pcap.py") if Path("/work/shared/bench/make_pcap.py").exists() else (
    ROOT.parent / "shared" / "bench" / "make_pcap.py")


def datagrams(packets: int) -> list[bytes]:
    from analyzer.sources.readers import read_capture
    from analyzer.sources.replay import ethernet_frames

    path = Path(tempfile.gettempdir()) / f"live-bench-{packets}.pcap"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([sys.executable, str(GEN), "-o", str(tmp), "--packets", str(packets), "--seed", "1"],
                       check=True, stdout=subprocess.DEVNULL)
        os.replace(tmp, path)
    head = struct.pack("!II", 0x08000000, 4242 << 8)
    return [head + f for b in read_capture(str(path)) for f in ethernet_frames(b) if isinstance(f, bytes)]


def cpu_seconds(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


# ---------------------------------------------------------------- 1. capacity (one process per setting)

QUEUE = {"bytes": 256 << 20}  # the receive queue of the drain's source (--queue)


def drain_once(data: list[bytes], count: int, dissect: bool) -> tuple[float, int, int]:
    """Queue `count` datagrams, analyse them in-process: (CPU seconds, datagrams analysed, kernel drops).
    The receive thread reads ahead of the analysis up to its queue (--queue): with the default
    256M, the pre-filled socket is read into ~130k datagrams of buffers long before they are
    analysed (page faults, cold caches), which a listener keeping up with its stream never does;
    `--queue 24M` (three batches) measures that steady state."""
    from analyzer.config import Options
    from analyzer.engines.live import LiveRun, policy_judge
    from analyzer.sources.mirror import MirrorSource

    try:
        src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), rcvbuf=1 << 30, queue_bytes=QUEUE["bytes"])
    except TypeError:  # a tree from before the receive thread (--tree)
        src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), rcvbuf=1 << 30)
    sender = Sender(data, src.bound_ports[0])  # sendmmsg: little of the sender's work is counted with ours
    sender.paced(None, count)
    sender.close()
    out = tempfile.mkdtemp(prefix="live-bench-drain-")
    run = LiveRun(src, Options().with_values(dissect=dissect), window=100.0, out_dir=out,
                  judge=policy_judge() if dissect else None)

    def stop_when_read() -> None:
        while src.counters.received < count:
            time.sleep(0.02)
        src.stop()

    watcher = threading.Thread(target=stop_when_read)
    c0 = time.process_time()
    watcher.start()
    for _w in run.run():
        pass
    c1 = time.process_time()
    watcher.join()
    src.close()
    return c1 - c0, run.totals.analysed, src.kernel_drops()


def drain_instructions(count: int, dissect: bool, tree: Path) -> int:
    """Callgrind instructions of one process in `tree` that queues then analyses `count` datagrams
    (after a warm-up of count/10), as --drain does (CPU time aside)."""
    from instructions import callgrind

    return callgrind(tree, [str(tree / "bench" / "live_bench.py"), "--drain-once", str(count),
                            "--queue", str(QUEUE["bytes"]), *([] if dissect else ["--no-dissect"])],
                     "live_bench: the callgrind run")


def instructions_table(count: int, dissect: bool, trees: list[Path]) -> None:
    """Marginal instructions per datagram: (I(N) - I(N/5)) / (N - N/5), per tree."""
    small = max(count // 5, 1000)
    print(f"Instructions per datagram analysed (callgrind, marginal between {small:,} and {count:,} datagrams; "
          f"dissection {'all' if dissect else 'none'}; user space only)")
    base = None
    for tree in trees:
        a, b = drain_instructions(small, dissect, tree), drain_instructions(count, dissect, tree)
        per = (b - a) / (count - small)
        base = base or per
        print(f"  {per:10,.0f} instructions/datagram  {per / base:6.3f} x the first  {tree}", flush=True)


def drain_capacity(data: list[bytes], count: int, dissect: bool) -> dict[str, object]:
    """Marginal CPU per datagram: a warm-up, then N/5 and N datagrams (see the module docstring)."""
    from analyzer.sources.mirror import MirrorSource

    probe = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    receiver = probe.receiver + (" thread" if getattr(probe, "threaded", False) else "")
    probe.close()
    drain_once(data, max(count // 10, 1000), dissect)  # imports, kernels, the policy's first run
    small = max(count // 5, 1000)
    cpu_s, got_s, drops_s = drain_once(data, small, dissect)
    cpu_n, got_n, drops_n = drain_once(data, count, dissect)
    marginal = (cpu_n - cpu_s) / max(got_n - got_s, 1) * 1e6
    return {"receiver": receiver, "dissect": dissect, "datagrams": got_n, "kernel_drops": drops_s + drops_n,
            "cpu_s": round(cpu_n, 3), "us_whole_run": round(cpu_n / max(got_n, 1) * 1e6, 2),
            "us_marginal": round(marginal, 2), "per_core": round(1e6 / max(marginal, 1e-9)), "load": load()}


def capacity_table(count: int, settings: list[tuple[bool, bool]]) -> dict[tuple[bool, bool], dict]:
    """Each (recvmmsg, dissect) setting in its own pinned process (the fallback needs a fresh one)."""
    results = {}
    print(f"\n1. Capacity of one core ({count:,} datagrams queued, then analysed; marginal CPU per datagram)")
    print(f"{'receiver':>15} | dissection | CPU us/datagram (marginal) | datagrams/s per core | whole run us | drops "
          "| load")
    for mmsg, dissect in settings:
        env = dict(os.environ)
        if not mmsg:
            env["INTRANSIT_NO_MMSG"] = "1"
        cmd = ["taskset", "-c", "0", sys.executable, __file__, "--drain", str(count), "--json", "--queue",
               str(QUEUE["bytes"])]
        if not dissect:
            cmd.append("--no-dissect")
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        if r.returncode:
            print(f"  (failed: {r.stderr.strip().splitlines()[-1:]})")
            continue
        res = json.loads(r.stdout.strip().splitlines()[-1])
        results[(mmsg, dissect)] = res
        print(f"{res['receiver']:>15} | {'all' if dissect else 'none':>10} | {res['us_marginal']:>26} | "
              f"{res['per_core']:>20,} | {res['us_whole_run']:>12} | {res['kernel_drops']:>5} | {res['load']}",
              flush=True)
    for dissect in (True, False):
        a, b = results.get((True, dissect)), results.get((False, dissect))
        if a and b:
            print(f"recvmmsg / recvfrom_into, dissection {'all' if dissect else 'none'}: "
                  f"{b['us_marginal']} -> {a['us_marginal']} us CPU per datagram "
                  f"(x{float(b['us_marginal']) / max(float(a['us_marginal']), 1e-9):.2f} datagrams per core)")
    return results


# ---------------------------------------------------------------- 2. and 3. the sender

class Sender:
    """Pre-built datagrams sent cyclically on a connected socket, sendmmsg where available."""

    def __init__(self, data: list[bytes], port: int, mmsg: bool = True) -> None:
        from analyzer.sources import _mmsg

        self.data = data
        self.ring = _mmsg.SendRing(data) if mmsg and _mmsg.available() else None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        self.sock.connect(("127.0.0.1", port))
        self.k = 0  # the next datagram of the ring
        self.failed = 0

    def _send(self, v: int) -> int:
        n = len(self.data)
        v = min(v, n - self.k)
        if self.ring is not None:
            sent = self.ring.send(self.sock.fileno(), self.k, v)
        else:
            sent = 0
            try:
                for j in range(self.k, self.k + v):
                    self.sock.send(self.data[j])
                    sent += 1
            except OSError:
                sent = sent or -1
        if sent <= 0:
            self.failed += 1
            time.sleep(0.0001)
            return 0
        self.k = (self.k + sent) % n
        return sent

    def paced(self, rate: float | None, count: int) -> tuple[int, float, float]:
        """Send `count` datagrams at `rate` (None: as fast as possible): (sent, wall s, CPU s)."""
        clock = time.perf_counter
        c0, t0 = time.process_time(), clock()
        sent = 0
        while sent < count:
            if rate is None:
                sent += self._send(min(1024, count - sent))
                continue
            now = clock()
            due = min(count, int((now - t0) * rate) + 1)
            if due - sent < 64 and due < count:  # wait for a burst of 64, at most 1 ms after the first is due
                wake = min(t0 + (sent + 63) / rate, t0 + sent / rate + 0.001) - now
                if wake > 0.0001:
                    time.sleep(wake)
                    continue
            if due > sent:
                sent += self._send(min(1024, due - sent))
        return sent, clock() - t0, time.process_time() - c0

    def close(self) -> None:
        self.sock.close()


def sender_capacity(data: list[bytes], count: int) -> None:
    print(f"\n2. The sender (pre-built datagrams, unpaced, {count:,} to a socket nobody reads; CPU per datagram)")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    res = {}
    for mmsg in (True, False):
        s = Sender(data, sink.getsockname()[1], mmsg=mmsg)
        s.paced(None, min(count, 20000))  # warm-up
        sent, wall, cpu = s.paced(None, count)
        s.close()
        res[mmsg] = cpu / max(sent, 1) * 1e6
        print(f"{'sendmmsg' if mmsg else 'send':>9}: {res[mmsg]:.2f} us CPU per datagram = "
              f"{sent / max(cpu, 1e-9):,.0f} datagrams/s per core (wall {sent / max(wall, 1e-9):,.0f}/s); {load()}",
              flush=True)
    sink.close()
    print(f"sendmmsg / send: x{res[False] / max(res[True], 1e-9):.2f} datagrams per sender core")


# ---------------------------------------------------------------- 3. the zero-loss search

def udp_socket_state(port: int) -> tuple[int, int]:
    """(rx_queue bytes, drops) of the UDP socket bound to `port` (/proc/net/udp)."""
    with open("/proc/net/udp") as fh:
        next(fh)
        for line in fh:
            f = line.split()
            if int(f[1].split(":")[1], 16) == port:
                return int(f[4].split(":")[1], 16), int(f[12])
    return 0, 0


class Listener:
    def __init__(self, dissect: bool, rcvbuf: str) -> None:
        self.out = tempfile.mkdtemp(prefix="live-bench-")
        cmd = ["taskset", "-c", "0", sys.executable, "-m", "analyzer", "listen", "--bind", "127.0.0.1", "--port", "0",
               "--no-geneve", "--window", "10s", "--out", self.out, "--rcvbuf", rcvbuf,
               *([] if dissect else ["--no-dissect"])]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.first = self.proc.stderr.readline()
        self.port = int(self.first.split(" port ")[1].split()[0])

    def windows(self) -> int:
        """Windows the listener has written so far."""
        return len(glob.glob(os.path.join(self.out, "stats-*.jsonl")))

    def status(self) -> dict:
        """The listener's status.json (counters so far, receive queue depth), {} before the first."""
        try:
            return json.loads(Path(self.out, "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def stop(self) -> tuple[dict, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=300)
        stats = [json.loads(Path(p).read_text()) for p in sorted(glob.glob(os.path.join(self.out, "stats-*.jsonl")))]
        return (stats[-1]["total_counters"] if stats else {}), err


def step(listener: Listener, sender: Sender, rate: float, seconds: float) -> dict[str, object]:
    """One rate for `seconds`: losses are the kernel's drops (/proc/net/udp) and the listener's
    queue drops (its status.json, rewritten every second); the backlog must drain within 1.5 s."""
    _, drops0 = udp_socket_state(listener.port)
    qdrops0 = int(listener.status().get("counters", {}).get("dropped_queue", 0))
    windows0 = listener.windows()
    cpu0, w0 = cpu_seconds(listener.proc.pid), time.perf_counter()
    sent, took, sender_cpu = sender.paced(rate, int(rate * seconds))
    cpu_send = cpu_seconds(listener.proc.pid)
    windows = listener.windows() - windows0  # closed while sending: their burst was inside the step
    sent_at = time.time_ns()
    t = time.perf_counter()
    backlog = -1
    drained = False
    while time.perf_counter() - t < 1.5:  # a status written after the sending ended, nothing queued anywhere
        st = listener.status()
        if st.get("time_ns", 0) > sent_at:
            if backlog < 0:
                backlog = int(st.get("queued_datagrams", 0)) + udp_socket_state(listener.port)[0] // 1000
            if not st.get("queued_datagrams") and not udp_socket_state(listener.port)[0]:
                drained = True
                break
        time.sleep(0.05)
    cpu1, w1 = cpu_seconds(listener.proc.pid), time.perf_counter()
    _, drops1 = udp_socket_state(listener.port)
    drops = drops1 - drops0
    qdrops = int(listener.status().get("counters", {}).get("dropped_queue", 0)) - qdrops0
    achieved = sent / max(took, 1e-9)
    ok_sender = achieved >= 0.97 * rate
    ok = ok_sender and drops == 0 and qdrops == 0 and drained
    share = (cpu_send - cpu0) / max(took, 1e-9)
    if not ok_sender:
        each = sender_cpu / max(sent, 1) * 1e6
        why = f"the sender: {achieved:,.0f}/s of {rate:,.0f}/s asked ({each:.2f} us CPU each)"
    elif drops:
        why = (f"the socket buffer overflowed: {drops:,} kernel drops; the listener used {share:.0%} of a core "
               f"while sending")
    elif qdrops:
        why = f"the receive queue was full: {qdrops:,} queue drops; the listener used {share:.0%} of a core"
    elif not drained:
        why = f"the listener fell behind: {max(backlog, 0):,} datagrams queued, not drained within 1.5 s"
    else:
        why = ""
    return {"rate": rate, "sent": sent, "achieved": round(achieved), "drops": drops + qdrops, "ok": ok, "why": why,
            "listener_cpu_share": round(share, 2), "backlog": max(backlog, 0), "windows": windows,
            "listener_us": round((cpu1 - cpu0) / max(sent, 1) * 1e6, 2),
            "sender_us": round(sender_cpu / max(sent, 1) * 1e6, 2), "wall_s": round(w1 - w0, 1), "load": load()}


def search(data: list[bytes], start: float, seconds: float, refine: int, dissect: bool, rcvbuf: str,
           top: float) -> None:
    print(f"\n3. Zero-loss search ({seconds:g} s per step, listener --rcvbuf {rcvbuf}, "
          f"dissection {'all' if dissect else 'none'}; listener on CPU 0, sender on CPU 1)")
    os.sched_setaffinity(0, {1})
    listener = Listener(dissect, rcvbuf)
    print(listener.first.strip())
    time.sleep(1.0)
    sender = Sender(data, listener.port)
    sender.paced(20000, 20000)  # the listener's first batches: kernels, imports
    time.sleep(1.0)
    print("rate asked | achieved | drops (kernel + queue) | listener CPU share | windows closed | queued after "
          "| listener us/datagram | sender us/datagram | result | load")
    total_sent = 20000
    good, bad = 0.0, None
    rate = start
    tried: dict[float, dict] = {}

    def run(rate: float) -> dict:
        nonlocal total_sent
        r = step(listener, sender, rate, seconds)
        total_sent += int(r["sent"])  # type: ignore[call-overload]
        tried[rate] = r
        print(f"{rate:>10,.0f} | {r['achieved']:>8,} | {r['drops']:>22,} | {r['listener_cpu_share']:>18.0%} | "
              f"{r['windows']:>14} | {r['backlog']:>12,} | {r['listener_us']:>20} | {r['sender_us']:>18} | "
              f"{'zero loss' if r['ok'] else r['why']} | {r['load']}", flush=True)
        time.sleep(0.5)
        return r

    while rate <= top:
        if run(rate)["ok"]:
            good = rate
            rate = round(rate * 1.25, -3)
        else:
            bad = rate
            break
    for _ in range(refine if bad else 0):
        mid = round((good + bad) / 2, -3)  # type: ignore[operator]
        if mid in (good, bad):
            break
        if run(mid)["ok"]:
            good = mid
        else:
            bad = mid
    sender.close()
    st = listener.status()
    totals, err = listener.stop()
    print(f"\nHighest zero-loss rate: {good:,.0f} datagrams/s" if good else "\nNo step was free of loss.")
    if bad is not None:
        print(f"What breaks first above it (at {bad:,.0f}/s): {tried[bad]['why']}")
    else:
        print(f"No step up to {top:,.0f}/s failed (raise --top).")
    received, lost = int(totals.get("received", 0)), int(totals.get("dropped_kernel", 0))
    accounted = sum(int(totals.get(k, 0)) for k in ("analysed", "duplicates", "filtered", "dropped_queue"))
    adds_up = received + lost == total_sent and accounted == received
    print(f"Listener totals: {received:,} received + {lost:,} kernel drops of {total_sent:,} sent; "
          f"received = {totals.get('analysed', 0):,} analysed + {totals.get('duplicates', 0)} duplicates + "
          f"{totals.get('filtered', 0)} filtered + {totals.get('dropped_queue', 0)} queue drops: "
          f"{'the counters add up' if adds_up else 'THE COUNTERS DO NOT ADD UP'}")
    print(f"Receive queue: at most {st.get('queue_peak_batches', 0)} batches waiting for the analysis at once "
          f"(the bursts it absorbed); full {st.get('queue_full_events', 0)} times")
    if not adds_up:
        print(err[-2000:])


# ---------------------------------------------------------------- 4. sustained load, distinct flows

class _Phases:
    """The analysis thread's CPU by phase (exclusive: a phase nested in another is not counted twice),
    by wrapping the functions the listener calls; the receive thread's CPU is read from /proc."""

    def __init__(self) -> None:
        import threading

        self.cpu: dict[str, float] = {}
        self.stack: list[str] = []
        self.last = 0.0
        self.thread = threading.get_ident()

    def _enter(self, name: str) -> None:
        now = time.thread_time()
        if self.stack:
            top = self.stack[-1]
            self.cpu[top] = self.cpu.get(top, 0.0) + now - self.last
        self.stack.append(name)
        self.last = now

    def _exit(self) -> None:
        now = time.thread_time()
        top = self.stack.pop()
        self.cpu[top] = self.cpu.get(top, 0.0) + now - self.last
        self.last = now

    def wrap(self, owner: object, attr: str, name: str, generator: bool = False) -> None:
        import functools
        import threading

        inner = getattr(owner, attr)
        phases = self

        if generator:
            @functools.wraps(inner)
            def wrapped_gen(*args: object, **kw: object) -> Iterator[object]:
                if threading.get_ident() != phases.thread:
                    yield from inner(*args, **kw)
                    return
                it = iter(inner(*args, **kw))
                while True:
                    phases._enter(name)
                    try:
                        item = next(it)
                    except StopIteration:
                        return
                    finally:
                        phases._exit()
                    yield item

            setattr(owner, attr, wrapped_gen)
            return

        @functools.wraps(inner)
        def wrapped(*args: object, **kw: object) -> object:
            if threading.get_ident() != phases.thread:
                return inner(*args, **kw)
            phases._enter(name)
            try:
                return inner(*args, **kw)
            finally:
                phases._exit()

        setattr(owner, attr, wrapped)


def instrument_phases() -> _Phases:
    """Wraps the listener's steps (before the LiveRun is made) to count the analysis thread's CPU by
    phase: the batch's assembly (the receive thread's slab read into columns), decode, truncation,
    de-duplication, counting, the flow table (feed; expiry), dissection, the flows' Arrow columns, the
    policy stage's judging, the sinks' writing, the status file, a window's close and open (the
    rest of them); wrapped functions a tree lacks are skipped."""
    import analyzer.engines.live as L
    from analyzer import pipeline
    from analyzer.flows.table import FlowTable
    from analyzer.sources.mirror import MirrorSource

    ph = _Phases()
    for owner, attr, name, gen in [
            (MirrorSource, "_slab_batch", "batch assembly", False), (L, "decode", "decode", False),
            (L, "mark_truncated", "truncation", False), (L.Deduplicator, "keep", "dedup", False),
            (L, "_subset", "dedup", False), (L.LiveRun, "_count", "count", False),
            (L.LiveRun, "_status", "status", False), (L.LiveRun, "_close", "close/open (rest)", False),
            (L.LiveRun, "_open", "close/open (rest)", False), (FlowTable, "feed", "flow table", True),
            (FlowTable, "expire_iter", "flow table expiry", True), (pipeline.Collector, "add", "collector add", False),
            (pipeline._Dissection, "run", "dissection", False), (pipeline, "_flow_frame", "flows to Arrow", False),
            (pipeline.Collector, "_rows", "frame rows", False)]:
        if hasattr(owner, attr):
            ph.wrap(owner, attr, name, gen)
    try:
        from analyzer.policy.stage import PolicyStage

        ph.wrap(PolicyStage, "on_flows", "policy judge", False)
        ph.wrap(PolicyStage, "finish", "policy judge", False)
    except ImportError:
        pass
    from analyzer.report import stream

    for cls in (stream._Sink, stream.FrameWriter):
        for attr in ("write", "write_table", "close"):
            if attr in vars(cls):
                ph.wrap(cls, attr, "sinks (files)", False)
    return ph


def thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process (/proc/self/task)."""
    return {tid: user + system for tid, (user, system, _faults) in thread_usage().items()}


def thread_usage() -> dict[int, tuple[float, float, int]]:
    """(user CPU s, system CPU s, minor page faults) of each thread of this process (/proc/self/task)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            f = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(f[11]) / tick, int(f[12]) / tick, int(f[7]))
    return out


def sustain_listen(window: float, rcvbuf: str, phased: bool = False, shed: bool = True,
                   memory_budget: str | None = None) -> None:
    """The listener of --sustain (its own pinned process): a LiveRun until SIGTERM; prints its port
    first, then one JSON line: each window's numbers and the process CPU."""
    import gc

    try:  # as `intransit listen` (the CLI) runs: before numpy loads (a tree without it: as that tree's CLI)
        from analyzer._process import tune_process

        tune_process()
    except ImportError:
        os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")
    from analyzer._gc import pace_process
    from analyzer.config import Options
    from analyzer.engines.live import LiveRun, parse_size, policy_judge
    from analyzer.sources.mirror import MirrorSource

    pace_process()  # likewise
    sys.setswitchinterval(0.001)  # likewise (analyzer.engines.live.live_main)
    pauses = {"n": 0, "full": 0, "s": 0.0, "max": 0.0, "t": 0.0}

    def on_gc(phase: str, info: dict[str, int]) -> None:  # the collector's pauses (the GIL is held: the process's)
        if phase == "start":
            pauses["t"] = time.perf_counter()
            return
        took = time.perf_counter() - pauses["t"]
        pauses["n"] += 1
        pauses["full"] += info["generation"] == 2
        pauses["s"] += took
        pauses["max"] = max(pauses["max"], took)

    gc.callbacks.append(on_gc)
    phases = instrument_phases() if phased else None
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), rcvbuf=parse_size(rcvbuf))
    out = tempfile.mkdtemp(prefix="live-bench-sustain-")
    import inspect

    # (a tree before load shedding has no `shed`: it never sheds)
    more = {"shed": shed} if "shed" in inspect.signature(LiveRun).parameters else {}
    options = Options() if memory_budget is None else Options().with_values(memory_budget=parse_size(memory_budget))
    run = LiveRun(src, options, window=window, out_dir=out, judge=policy_judge(vpc=["10.0.0.0/8"]), **more)
    closes: list[list[float]] = []  # [CPU s, wall s, datagrams queued when it began] of each close
    inner_close = run._close
    inner_open = getattr(run, "_open", None)  # the next window's collector, stage and files (not in every tree)

    close_phases: list[dict[str, float]] = []  # with --phases: each close's CPU by phase

    def timed_close(*args: object, **kw: object) -> object:  # the close blocks the analysis thread: its time
        queued = src.in_queue
        c0, t0 = time.thread_time(), time.perf_counter()
        before = dict(phases.cpu) if phases is not None else None
        try:
            return inner_close(*args, **kw)
        finally:
            closes.append([time.thread_time() - c0, time.perf_counter() - t0, queued])
            if before is not None and phases is not None:
                close_phases.append({k: round(v - before.get(k, 0.0), 3) for k, v in phases.cpu.items()
                                     if v - before.get(k, 0.0) > 0.005})

    def timed_open(*args: object, **kw: object) -> object:  # right after a close: counted with it
        c0, t0 = time.thread_time(), time.perf_counter()
        try:
            return inner_open(*args, **kw)  # type: ignore[misc]
        finally:
            if closes:
                closes[-1][0] += time.thread_time() - c0
                closes[-1][1] += time.perf_counter() - t0

    # the analysis thread's CPU per batch: decode to flows, and whatever ran before it asked for the next
    # batch (flows ended and dissected, a chunk of them judged and written, the expiry, a window's close)
    bursts: list[float] = []
    inner_batches = src.batches

    slow: list[tuple[float, dict[str, float]]] = []  # with --phases: the longest batches by phase

    def timed_batches() -> Iterator[object]:
        for b in inner_batches():
            c0, n = time.thread_time(), len(closes)
            before = dict(phases.cpu) if phases is not None else None
            yield b
            if len(closes) == n:  # not the batch a window closed after (its time is the close's)
                took = time.thread_time() - c0
                bursts.append(took)
                if before is not None and took > 0.2 and phases is not None:
                    slow.append((took, {k: round(v - before.get(k, 0.0), 3) for k, v in phases.cpu.items()
                                        if v - before.get(k, 0.0) > 0.01}))

    src.batches = timed_batches  # type: ignore[method-assign]
    run._close = timed_close  # type: ignore[method-assign]
    if inner_open is not None:
        run._open = timed_open  # type: ignore[method-assign]
    signal.signal(signal.SIGTERM, lambda *_: src.stop())
    print(src.bound_ports[0], flush=True)
    rows = []
    c0 = time.process_time()
    main_tid = threading.get_native_id()
    base = thread_usage()  # (the main thread's imports and policy before the run)
    usage: dict[int, tuple[float, float, int]] = {}  # the last seen of each thread (the receive thread ends first)
    seen = 0
    for w in run.run():
        usage.update(thread_usage())
        longest = sorted(bursts[seen:])[-3:][::-1]
        seen = len(bursts)
        cpu, wall, queued = closes[-1]  # the next window's _open runs before the yield: counted
        c = w.counters
        rows.append({"window": w.index, "seconds": round((w.end_ns - w.start_ns) / 1e9, 1), "received": c.received,
                     "kernel_drops": c.dropped_kernel, "queue_drops": c.dropped_queue, "flows": c.flows,
                     "evicted": c.evicted, "shed": getattr(c, "shed", 0),
                     # the memory budget's decisions so far: flows ended early, the payload budget now
                     "ended_memory_total": run.table.memory_evicted,
                     "payload_budget_lowered_to": run.table.budget_lowered_to,  # 0: never lowered
                     "close_cpu_s": round(cpu, 3), "close_wall_s": round(wall, 3), "queued_at_close": int(queued),
                     "longest_batch_cpu_s": [round(x, 3) for x in longest]})
    cpu = time.process_time() - c0
    usage.update(thread_usage())
    src.close()
    import analyzer

    zero = (0.0, 0.0, 0)
    delta = {t: tuple(a - b for a, b in zip(v, base.get(t, zero), strict=True)) for t, v in usage.items()}
    threads = {t: v[0] + v[1] for t, v in delta.items()}
    # user s, system s, minor faults of the analysis thread, then the others (the receive thread first)
    split = [[round(v[0], 2), round(v[1], 2), int(v[2])] for t, v in sorted(
        delta.items(), key=lambda kv: (kv[0] != main_tid, -(kv[1][0] + kv[1][1]))) if v[0] + v[1] > 0]
    extra: dict[str, object] = {"main_thread_cpu_s": round(threads.pop(main_tid, 0.0), 2),
                                "other_threads_cpu_s": sorted((round(v, 2) for v in threads.values() if v > 0),
                                                              reverse=True),
                                "threads_user_system_faults": split}
    if phases is not None:
        extra["phases_cpu_s"] = {k: round(v, 3) for k, v in sorted(phases.cpu.items(), key=lambda kv: -kv[1])}
        extra["slowest_batches"] = [[round(t, 3), p] for t, p in sorted(slow, key=lambda x: -x[0])[:8]]
        extra["close_phases"] = close_phases

    print(json.dumps({"analyzer": str(Path(analyzer.__file__).parent), "windows": rows, "cpu_s": round(cpu, 2),
                      "analysed": run.totals.analysed,
                      "kernel_drops": run.totals.dropped_kernel, "gc_collections": pauses["n"],
                      "gc_full": pauses["full"], "gc_s": round(pauses["s"], 3),
                      "gc_max_ms": round(pauses["max"] * 1e3, 1),
                      "load": load(), **extra}), flush=True)


def sustain(data: list[bytes], seconds: float, rate: float, window: float, rcvbuf: str, tree: Path,
            phases: bool = False, shed: bool = True, memory_budget: str | None = None) -> dict:
    """One sustained run against the analyzer of `tree` (see the module docstring, 4.)."""
    import numpy as np

    cmd = ["taskset", "-c", "0", sys.executable, __file__, "--sustain-listen", "--window", str(window),
           "--rcvbuf", rcvbuf, "--root", str(tree), *(["--phases"] if phases else []),
           *([] if shed else ["--no-shed"]), *(["--memory-budget", memory_budget] if memory_budget else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=tree)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    os.sched_setaffinity(0, {1})
    sender = Sender(data, port)
    assert sender.ring is not None, "the sustained mode needs sendmmsg"
    ring = sender.ring
    offs = np.concatenate([[0], np.cumsum(ring.lens)[:-1]]).astype(np.int64)
    sent = loops = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        loops += 1  # a new VNI: the loop's flows are new flows (bytes 4-6 of the VXLAN header)
        for i, shift in enumerate((16, 8, 0)):
            ring.buf[offs + 4 + i] = (loops >> shift) & 0xFF
        sender.k = 0
        left = int(min(len(data), rate * (seconds - (time.perf_counter() - t0)) + 1))
        got, _, _ = sender.paced(rate, max(left, 0))
        sent += got
    took = time.perf_counter() - t0
    sender.close()
    time.sleep(3.0)  # the backlog drains
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=900)
    res = json.loads(out.strip().splitlines()[-1])
    res.update(sent=sent, loops=loops, rate_sent=round(sent / took))
    return res


def sustain_table(data: list[bytes], seconds: float, rate: float, window: float, rcvbuf: str,
                  trees: list[Path], phases: bool = False, shed: bool = True, memory_budget: str | None = None) -> None:
    print(f"\n4. Sustained load: {seconds:g} s at {rate:,.0f} datagrams/s, a new VNI per loop of {len(data):,} "
          f"datagrams (new flows), windows of {window:g} s; listener pinned to CPU 0, sender to CPU 1; {load()}")
    for tree in trees:
        r = sustain(data, seconds, rate, window, rcvbuf, tree, phases, shed, memory_budget)
        print(f"{r['analyzer']}: sent {r['sent']:,} in {r['loops']} loops ({r['rate_sent']:,}/s); analysed "
              f"{r['analysed']:,}; kernel drops {r['kernel_drops']:,}; flows not dissected (shed) "
              f"{sum(w.get('shed', 0) for w in r['windows']):,} of {sum(w['flows'] for w in r['windows']):,}; "
              f"listener CPU {r['cpu_s']} s = "
              f"{r['cpu_s'] / max(r['analysed'], 1) * 1e6:.2f} us per datagram analysed; garbage collector: "
              f"{r['gc_collections']} collections ({r['gc_full']} full), {r['gc_s']} s, longest {r['gc_max_ms']} ms; "
              f"{r['load']}")
        if "main_thread_cpu_s" in r:
            n = max(r["analysed"], 1)
            print(f"  threads (CPU us per datagram analysed): analysis {r['main_thread_cpu_s'] / n * 1e6:.2f}, others "
                  + ", ".join(f"{v / n * 1e6:.2f}" for v in r["other_threads_cpu_s"]) + " (the receive thread first)")
        if "threads_user_system_faults" in r:
            print("  the same, user / system, and minor page faults per 1,000 datagrams: " + "; ".join(
                f"{u / n * 1e6:.2f} / {s / n * 1e6:.2f}, {f / n * 1e3:.1f}"
                for u, s, f in r["threads_user_system_faults"]))
        for name, v in r.get("phases_cpu_s", {}).items():
            print(f"    {name:>20}: {v / max(r['analysed'], 1) * 1e6:6.2f} us per datagram ({v} s)")
        for took, parts in r.get("slowest_batches", []):
            print(f"  a batch of {took} CPU s: " + ", ".join(f"{k} {v}" for k, v in sorted(parts.items(),
                                                                                         key=lambda kv: -kv[1])))
        for i, parts in enumerate(r.get("close_phases", [])):
            print(f"  close of window {i}: " + ", ".join(f"{k} {v}" for k, v in sorted(parts.items(),
                                                                                      key=lambda kv: -kv[1])))
        print(f"  {'window':>6} {'seconds':>7} {'received':>10} {'kernel drops':>12} {'queue drops':>11} "
              f"{'flows':>8} {'shed':>7} {'evicted':>8} {'mem-ended':>9} {'close CPU s':>11} {'close wall s':>12} "
              f"{'queued at close':>15}  "
              "longest other batches (analysis CPU s)")
        for w in r["windows"]:
            print(f"  {w['window']:>6} {w['seconds']:>7} {w['received']:>10,} {w['kernel_drops']:>12,} "
                  f"{w['queue_drops']:>11,} {w['flows']:>8,} {w.get('shed', 0):>7,} {w['evicted']:>8,} "
                  f"{w.get('ended_memory_total', 0):>9,} "
                  f"{w['close_cpu_s']:>11} "
                  f"{w['close_wall_s']:>12} "
                  f"{w['queued_at_close']:>15,}  {' '.join(map(str, w['longest_batch_cpu_s']))}")
        print(json.dumps(r), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="About one minute: fewer datagrams, shorter steps.")
    ap.add_argument("--packets", type=int, default=200_000, help="Datagrams in the generated stream.")
    ap.add_argument("--start", type=float, default=50_000, help="First rate of the search.")
    ap.add_argument("--top", type=float, default=2_000_000, help="Highest rate the search tries.")
    ap.add_argument("--seconds", type=float, default=None, help="Length of a step (default 5, --quick 2).")
    ap.add_argument("--refine", type=int, default=None, help="Bisection steps (default 3, --quick 1).")
    ap.add_argument("--rcvbuf", default="8M", help="The listener's --rcvbuf in the search.")
    ap.add_argument("--no-dissect", action="store_true")
    ap.add_argument("--skip", default="", help="Parts to skip: capacity,sender,search (comma-separated).")
    ap.add_argument("--drain", type=int, default=0, metavar="N",
                    help="Only: queue N datagrams, then measure the listener's marginal CPU time per datagram.")
    ap.add_argument("--json", action="store_true", help="With --drain: one JSON line.")
    ap.add_argument("--instructions", type=int, default=0, metavar="N",
                    help="Only: marginal callgrind instructions per datagram (N and N/5 datagrams queued).")
    ap.add_argument("--tree", type=Path, action="append", default=[],
                    help="With --instructions: another checkout to measure beside this one (repeatable).")
    ap.add_argument("--drain-once", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--queue", default="256M",
                    help="The receive queue of --drain / --instructions (the listener's --queue default: 256M).")
    ap.add_argument("--sustain", type=float, default=0, metavar="SECONDS",
                    help="Only: sustained load with distinct flows (a new VNI per loop) for SECONDS (see 4.).")
    ap.add_argument("--rate", type=float, default=150_000, help="With --sustain: datagrams per second.")
    ap.add_argument("--window", type=float, default=60.0, help="With --sustain: the listener's window (s).")
    ap.add_argument("--phases", action="store_true",
                    help="With --sustain: the analysis thread's CPU by phase (wrapped functions; ~1%% slower).")
    ap.add_argument("--no-shed", action="store_true",
                    help="With --sustain: the listener never sheds dissection (as `listen --no-shed`).")
    ap.add_argument("--memory-budget", default=None, metavar="SIZE",
                    help="With --sustain: the listener's memory budget (as `listen --memory-budget`; default 768M).")
    ap.add_argument("--sustain-listen", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = ap.parse_args()
    quick = args.quick
    if args.sustain_listen:
        sustain_listen(args.window, args.rcvbuf, args.phases, not args.no_shed, args.memory_budget)
        return
    from analyzer.engines.live import parse_size

    QUEUE["bytes"] = parse_size(args.queue)
    packets = min(args.packets, 100_000) if quick else args.packets
    if args.instructions:
        instructions_table(args.instructions, not args.no_dissect, [ROOT, *(t.resolve() for t in args.tree)])
        return
    data = datagrams(packets)
    if args.sustain:
        sustain_table(data, args.sustain, args.rate, args.window, "16M" if args.rcvbuf == "8M" else args.rcvbuf,
                      [*(t.resolve() for t in args.tree), ROOT], args.phases, not args.no_shed, args.memory_budget)
        return
    if args.drain_once:  # one process of --instructions: a warm-up, then the run measured
        drain_once(data, max(args.drain_once // 10, 1000), not args.no_dissect)
        drain_once(data, args.drain_once, not args.no_dissect)
        return
    if args.drain:
        r = drain_capacity(data, args.drain, not args.no_dissect)
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{r['receiver']}: {r['datagrams']:,} datagrams ({r['kernel_drops']} kernel drops): "
                  f"{r['us_marginal']} us CPU per datagram marginal ({r['per_core']:,}/s per core), "
                  f"{r['us_whole_run']} us over the whole run; {r['load']}")
        return
    print(f"{len(data):,} datagrams of {sum(map(len, data)) / len(data):.0f} bytes on average; "
          f"{os.cpu_count()} cores; {load()}", flush=True)
    skip = set(args.skip.split(","))
    if "capacity" not in skip:
        settings = [(True, True), (False, True)] if quick else [(True, True), (False, True), (True, False),
                                                                (False, False)]
        capacity_table(50_000 if quick else 200_000, settings)
    if "sender" not in skip:
        sender_capacity(data, 100_000 if quick else 400_000)
    if "search" not in skip:
        search(data, args.start, args.seconds or (2.0 if quick else 5.0),
               args.refine if args.refine is not None else (1 if quick else 3), not args.no_dissect, args.rcvbuf,
               args.top)


if __name__ == "__main__":
    main()
