"""Live mirror target under load: `intransit listen` on loopback fed a VXLAN stream at rising rates.

    python bench/live_bench.py [--rates 25000,50000,...] [--seconds 5] [--packets 200000] [--no-dissect]
    python bench/live_bench.py --drain 200000 [--no-dissect]     # CPU per datagram, apart from the load

The traffic is the realistic generator of ../shared/bench (make_pcap.py, seed 1: TLS, HTTP, SSH,
DNS, ... conversations), each packet wrapped in VXLAN as a Traffic Mirroring session sends it. For
each rate a fresh listener (pinned to CPU 0 with taskset; windows of 10 s, parquet, the default
policy) receives `--seconds` of it from this process (pinned to CPU 1, pre-built datagrams, paced
in bursts of 32), then gets SIGTERM; its last stats line says what it received and what the kernel
dropped. Zero loss: received == sent and no kernel drop. Printed per rate: the rate asked and
achieved, received, kernel drops, loss, the listener's CPU seconds and CPU microseconds per
datagram, and the load average (the machine is shared: read the numbers with it).
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GEN = Path("/work/shared/bench/make_pcap.py") if Path("/work/shared/bench/make_pcap.py").exists() else (
    ROOT.parent / "shared" / "bench" / "make_pcap.py")


def datagrams(packets: int) -> list[bytes]:
    sys.path.insert(0, str(ROOT))
    from analyzer.sources.readers import read_capture
    from analyzer.sources.replay import ethernet_frames

    path = Path(tempfile.gettempdir()) / f"live-bench-{packets}.pcap"
    if not path.exists():
        subprocess.run([sys.executable, str(GEN), "-o", str(path), "--packets", str(packets), "--seed", "1"],
                       check=True, stdout=subprocess.DEVNULL)
    head = struct.pack("!II", 0x08000000, 4242 << 8)
    return [head + f for b in read_capture(str(path)) for f in ethernet_frames(b) if isinstance(f, bytes)]


def cpu_seconds(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def send(port: int, data: list[bytes], rate: float, seconds: float) -> tuple[int, float]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    s.connect(("127.0.0.1", port))
    out = s.send
    n, k, total = 0, 0, int(rate * seconds)
    clock = time.perf_counter
    t0 = clock()
    burst = 32
    while n < total:
        due = t0 + n / rate
        ahead = due - clock()
        if ahead > 0.0002:
            time.sleep(ahead)
        for _ in range(min(burst, total - n)):
            try:
                out(data[k])
            except OSError:  # ENOBUFS / refused: count as not sent
                n -= 1
            n += 1
            k += 1
            if k == len(data):
                k = 0
    took = clock() - t0
    s.close()
    return n, took


def step(data: list[bytes], rate: float, seconds: float, extra: list[str]) -> dict[str, object]:
    out = tempfile.mkdtemp(prefix="live-bench-")
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "analyzer", "listen", "--bind", "127.0.0.1", "--port", "0",
           "--no-geneve", "--window", "10s", "--out", out, *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    port = int(line.split(" port ")[1].split()[0])
    time.sleep(1.0)  # the listener's imports and first kernels
    cpu0 = cpu_seconds(proc.pid)
    load0 = os.getloadavg()[0]
    sent, took = send(port, data, rate, seconds)
    time.sleep(0.5)
    cpu1 = cpu_seconds(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    stats = [json.loads(Path(p).read_text()) for p in sorted(glob.glob(os.path.join(out, "stats-*.jsonl")))]
    t = stats[-1]["total_counters"] if stats else {}
    received = int(t.get("received", 0))
    return {"rate": rate, "sent": sent, "achieved": round(sent / took), "received": received,
            "kernel_drops": int(t.get("dropped_kernel", 0)), "loss": sent - received,
            "cpu_s": round(cpu1 - cpu0, 2), "cpu_us_per_pkt": round((cpu1 - cpu0) / max(received, 1) * 1e6, 2),
            "load": round(load0, 2)}


def drain_capacity(data: list[bytes], count: int, dissect: bool) -> dict[str, float]:
    """The listener's capacity on one core, apart from the machine's load: `count` datagrams are
    queued in the socket first (a large forced buffer), then one in-process LiveRun analyses them
    (decode, dedup, flows, dissection, per-window policy and parquet files); its CPU time per
    datagram gives the rate one core sustains. Run twice, the first as a warm-up."""
    sys.path.insert(0, str(ROOT))
    from analyzer.config import Options
    from analyzer.engines.live import LiveRun, policy_judge
    from analyzer.sources.mirror import MirrorSource

    result: dict[str, float] = {}
    for _ in range(2):
        src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), rcvbuf=1 << 30)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", src.bound_ports[0]))
        for k in range(count):
            s.send(data[k % len(data)])
        s.close()
        out = tempfile.mkdtemp(prefix="live-bench-drain-")
        run = LiveRun(src, Options().with_values(dissect=dissect), window=10.0, out_dir=out,
                      judge=policy_judge() if dissect else None)
        import threading

        def stop_when_read(src: MirrorSource = src) -> None:
            while src.counters.received < count:  # (the bench checks kernel drops are 0 afterwards)
                time.sleep(0.05)
            src.stop()

        watcher = threading.Thread(target=stop_when_read)
        c0, w0 = time.process_time(), time.perf_counter()
        watcher.start()
        for _w in run.run():
            pass
        c1, w1 = time.process_time(), time.perf_counter()
        watcher.join()
        src.close()
        got = run.totals.analysed
        result = {"datagrams": got, "kernel_drops": src.kernel_drops(), "cpu_s": c1 - c0, "wall_s": w1 - w0,
                  "cpu_us": (c1 - c0) / max(got, 1) * 1e6, "per_core": got / max(c1 - c0, 1e-9)}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="25000,50000,100000,150000,200000,300000")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--no-dissect", action="store_true")
    ap.add_argument("--drain", type=int, default=0, metavar="N",
                    help="Instead: queue N datagrams, then measure the listener's CPU time per datagram.")
    args = ap.parse_args()
    data = datagrams(args.packets)
    print(f"{len(data)} datagrams of {sum(map(len, data)) / len(data):.0f} bytes on average; "
          f"{os.cpu_count()} cores; load {os.getloadavg()}", flush=True)
    if args.drain:
        r = drain_capacity(data, args.drain, not args.no_dissect)
        print(f"drained {r['datagrams']:,} datagrams ({r['kernel_drops']} kernel drops) in {r['cpu_s']:.2f} s CPU "
              f"({r['wall_s']:.2f} s wall): {r['cpu_us']:.2f} us CPU per datagram = {r['per_core']:,.0f} "
              f"datagrams/s per core; load {os.getloadavg()}")
        return
    os.sched_setaffinity(0, {1})
    extra = ["--no-dissect"] if args.no_dissect else []
    print("rate asked | achieved | received | kernel drops | loss | listener CPU s | CPU us/datagram | load")
    for rate in (float(r) for r in args.rates.split(",")):
        r = step(data, rate, args.seconds, extra)
        print(f"{r['rate']:>10,.0f} | {r['achieved']:>8,} | {r['received']:>8,} | {r['kernel_drops']:>12,} | "
              f"{r['loss']:>6,} | {r['cpu_s']:>14} | {r['cpu_us_per_pkt']:>15} | {r['load']}", flush=True)


if __name__ == "__main__":
    main()
