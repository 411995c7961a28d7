"""The live source's receive thread under a steady stream, apart from the analysis (issue 14).

    python bench/live_receive.py [--rate 150000] [--seconds 4] [--burn 3] [--coalesce 0.002]
        [--no-cmsg] [--lifo]

A threaded `MirrorSource` on loopback (pinned to CPU 0, --rcvbuf 16M, the CLI's 1 ms switch
interval) takes a VXLAN stream (../shared/bench's generator, as bench/live_bench.py) that a child
process sends at --rate from CPU 1 (sendmmsg, bursts of 64 as live_bench paces them). The analysis
thread decodes each batch and then burns --burn us of Python per datagram holding the GIL (a
stand-in for the rest of the analysis, so the receive thread competes for the GIL as it does in a
listener). Printed: datagrams, batches, receive calls, kernel drops, the receive thread's CPU per
datagram (user and system, /proc/self/task; the split is the kernel's tick sampling), and the
batch assembly's CPU (`_slab_batch`, analysis thread). Variants: --coalesce 0 (a wake per burst),
--no-cmsg (no SCM_TIMESTAMPNS, IP_PKTINFO, SO_RXQ_OVFL: what the ancillary data costs the kernel),
--lifo (reuse the most recently freed slab first). Interleave repeats: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def thread_cpu() -> dict[int, tuple[float, float]]:
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            f = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(f[11]) / tick, int(f[12]) / tick)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=150_000)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--burn", type=float, default=3.0, help="us of Python per datagram after decoding it")
    ap.add_argument("--coalesce", type=float, default=0.002)
    ap.add_argument("--no-cmsg", action="store_true")
    ap.add_argument("--lifo", action="store_true")
    ap.add_argument("--send", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    import live_bench as lb

    if a.send:  # the child: the sender
        os.sched_setaffinity(0, {1})
        s = lb.Sender(lb.datagrams(200_000), a.port)
        sent, wall, _ = s.paced(a.rate, a.send)
        print(json.dumps({"sent": sent, "wall": wall}), flush=True)
        return
    from analyzer.config import DecodeOptions
    from analyzer.decode import decode
    from analyzer.sources import _mmsg
    from analyzer.sources.mirror import MirrorSource

    os.sched_setaffinity(0, {0})
    sys.setswitchinterval(0.001)
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), rcvbuf=16 << 20, coalesce=a.coalesce)
    if a.no_cmsg:
        for so in src._socks:
            so.setsockopt(socket.SOL_SOCKET, _mmsg.SCM_TIMESTAMPNS, 0)
            so.setsockopt(_mmsg.IPPROTO_IP, _mmsg.IP_PKTINFO, 0)
            so.setsockopt(socket.SOL_SOCKET, _mmsg.SO_RXQ_OVFL, 0)
    if a.lifo:
        def lifo() -> object:
            lent = src._lent
            for j in range(len(lent) - 1, -1, -1):
                slab = lent[j]
                if not slab.queued and sys.getrefcount(slab.buf) <= 2:
                    del lent[j]
                    slab = src._rearm(slab)
                    break
            else:
                if len(lent) >= src.queue_slabs:
                    return None
                slab = src._slab()
            lent.append(slab)
            slab.queued = True
            return slab

        src._lendable = lifo  # type: ignore[method-assign,assignment]
    assembly = [0.0]
    inner = src._slab_batch

    def timed(slab: object) -> object:
        t = time.thread_time()
        try:
            return inner(slab)  # type: ignore[arg-type]
        finally:
            assembly[0] += time.thread_time() - t

    src._slab_batch = timed  # type: ignore[method-assign,assignment]
    dopt = DecodeOptions(src.vxlan_ports, ())
    count = int(a.rate * a.seconds)
    child = subprocess.Popen([sys.executable, __file__, "--send", str(count), "--port", str(src.bound_ports[0]),
                              "--rate", str(a.rate)], stdout=subprocess.PIPE, text=True)

    def stopper() -> None:
        child.wait()
        time.sleep(1.0)
        src.stop()

    threading.Thread(target=stopper, daemon=True).start()
    main_tid = threading.get_native_id()
    base = thread_cpu()
    last: dict[int, tuple[float, float]] = {}
    n = batches = 0
    for b in src.batches():
        k = len(b)
        n += k
        if k:
            batches += 1
            decode(b, dopt)
            end = time.thread_time() + k * a.burn * 1e-6
            x = 0
            while time.thread_time() < end:
                for _ in range(200):
                    x += 1
        last = thread_cpu()
    others = {t: (u - base.get(t, (0.0, 0.0))[0], s - base.get(t, (0.0, 0.0))[1])
              for t, (u, s) in last.items() if t != main_tid}
    user, system = max(others.values(), key=sum) if others else (0.0, 0.0)
    n = max(n, 1)
    print(f"rate {a.rate:,.0f} coalesce {a.coalesce} burn {a.burn}{' no-cmsg' if a.no_cmsg else ''}"
          f"{' lifo' if a.lifo else ''}: {n:,} datagrams in {batches} batches ({n / max(batches, 1):.0f} each), "
          f"{src.counters.syscalls:,} receive calls ({n / max(src.counters.syscalls, 1):.0f} each), kernel drops "
          f"{src.kernel_drops():,}; receive thread {(user + system) / n * 1e6:.2f} us/datagram (user "
          f"{user / n * 1e6:.2f}, system {system / n * 1e6:.2f}); batch assembly {assembly[0] / n * 1e6:.2f} "
          f"us/datagram; load {os.getloadavg()[0]:.1f}", flush=True)
    src.close()


if __name__ == "__main__":
    main()
