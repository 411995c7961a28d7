"""`intransit listen` and `replay` as commands: SIGTERM while a stream arrives (every datagram
accounted for, the last window written, exit 0), --pcap-out read back, a kernel mirror (tc mirred
into a Linux VXLAN device) in network namespaces compared with a tcpdump of the mirrored interface."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from support.live_helpers import sorted_keys, synthetic_tcp_pcap

import analyzer

ROOT = Path(__file__).resolve().parents[2]
PY = [sys.executable, "-m", "analyzer"]


def _start_listen(out: Path, *args: str, netns: str | None = None, bind: str = "127.0.0.1",
                  port: str = "0") -> tuple[subprocess.Popen, int]:
    cmd = [*PY, "listen", "--bind", bind, "--port", port, "--no-geneve", "--out", str(out), "--format", "parquet",
           *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "listen: udp ADDR port P (vxlan); ..."
    assert line.startswith("listen: udp"), line + proc.stderr.read()
    return proc, int(line.split(" port ")[1].split()[0])


def _stop(proc: subprocess.Popen, timeout: float = 15.0) -> tuple[int, str, float]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err, time.monotonic() - t0


def _stats(out: Path) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in sorted(glob.glob(str(out / "stats-*.jsonl")))]


def _flows(out: Path) -> pd.DataFrame:
    parts = [pd.read_parquet(p) for p in sorted(glob.glob(str(out / "flows-*.parquet")))]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


@pytest.mark.slow
def test_sigterm_while_replaying_accounts_for_every_datagram(tmp_path: Path) -> None:
    capture = tmp_path / "many.pcap"
    packets = synthetic_tcp_pcap(str(capture), 5000)  # 40,000 packets: 5 s at 8000 packets/s
    out, pcaps = tmp_path / "out", tmp_path / "pcap"
    proc, port = _start_listen(out, "--window", "1s", "--pcap-out", str(pcaps), "--rotate", "256k")
    sender = subprocess.Popen([*PY, "replay", str(capture), "--to", f"127.0.0.1:{port}", "--rate", "8000"],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120  # the replay's start-up may compile the kernels
        while time.monotonic() < deadline and not any(x["total_counters"]["received"] for x in _stats(out)):
            time.sleep(0.1)
        time.sleep(0.3)  # mid-stream: the replay takes 2.5 s
        rc, err, took = _stop(proc)
    finally:
        sender.communicate(timeout=60)
    assert rc == 0, err
    # bounded: the drain stops after 5 s (what is left: queue drops), then the last window is written;
    # the margin is for a loaded machine, where writing a window alone can take seconds
    assert took < 60, f"took {took:.1f} s to stop"
    assert not list(out.glob(".*")) and not list(pcaps.glob("*.tmp")), "temporary files left"
    stats = _stats(out)
    assert stats and stats[-1]["final"] and sum(s["final"] for s in stats) == 1
    t = stats[-1]["total_counters"]
    assert 0 < t["received"] < packets, "SIGTERM came too late or too early to test a shutdown mid-stream"
    assert t["received"] == t["analysed"] + t["duplicates"] + t["filtered"] + t["dropped_queue"]
    # every datagram is analysed, or (on a machine too loaded to drain the socket within 5 s) a queue drop
    assert t["analysed"] == t["decapsulated"] + t["not_tunnel"] + t["malformed"] == t["received"] - t["dropped_queue"]
    assert t["duplicates"] == t["filtered"] == 0, t
    assert sum(s["window_counters"]["received"] for s in stats) == t["received"]
    flows = _flows(out)
    assert len(flows) == t["flows"] and flows["uid"].is_unique  # no flow split across windows
    assert int(flows["packets_to_server"].sum() + flows["packets_to_client"].sum()) == t["analysed"]
    assert "listen: stopped;" in err and f"{t['received']} datagrams received" in err
    # every received datagram is in the --pcap-out files, which give the same flows again
    files = sorted(glob.glob(str(pcaps / "mirror-*.pcap")))
    assert len(files) > 1  # rotated
    again = analyzer.analyze(files, vxlan_ports=(4789, port), frames=("flows",)).flows
    a, b = sorted_keys(again), sorted_keys(flows)
    assert a.equals(b), a.compare(b)


def test_listen_refuses_bad_options_in_one_line(tmp_path: Path) -> None:
    for args, says in ((["--window", "soon"], "not a duration"), (["--allow", "nope"], "--allow 'nope'"),
                       (["--profile", "no-such-profile"], "profile")):
        r = subprocess.run([*PY, "listen", "--port", "0", "--no-geneve", "--out", str(tmp_path), *args], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_listen_takes_a_memory_budget_and_says_what_it_allows(tmp_path: Path) -> None:
    def first_line(budget: str) -> str:
        cmd = [*PY, "listen", "--bind", "127.0.0.1", "--port", "0", "--no-geneve", "--out", str(tmp_path / budget),
               "--memory-budget", budget]
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        rc, err, _ = _stop(proc)
        assert rc == 0, line + err
        return line

    def pages(line: str) -> int:
        return int(line.split(" payload pages")[0].rsplit(" ", 1)[1])

    small, big = first_line("64M"), first_line("2G")
    assert "memory budget 67108864 bytes" in small and "memory budget 2147483648 bytes" in big
    assert 16 * pages(small) < pages(big)  # the payload pages take their share of the budget
    r = subprocess.run([*PY, "listen", "--port", "0", "--no-geneve", "--out", str(tmp_path), "--memory-budget",
                        "1K"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "memory" in r.stderr.lower() and "Traceback" not in r.stderr, r.stderr


def test_replay_says_what_it_sent_and_refuses_a_bad_target(tmp_path: Path) -> None:
    r = subprocess.run([*PY, "replay", "captures/http_plain.pcap", "--to", "localhost"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "HOST:PORT" in r.stderr
    r = subprocess.run([*PY, "replay", "captures/http_plain.pcap", "--to", "127.0.0.1:9", "--rate", "1000"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "sent 14 of 14 packets" in r.stderr


# ---------------------------------------------------------------- kernel mirror in network namespaces

NS = ("live-c", "live-s", "live-m")


def _why_no_netns() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc, a VXLAN device)"
    for tool in ("ip", "tc", "tcpdump", "curl", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    r = subprocess.run(["ip", "netns", "add", "live-probe"], capture_output=True, text=True)
    if r.returncode:
        return f"ip netns unavailable: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", "live-probe"], capture_output=True)
    return None


def _sh(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"


def _in(ns: str, *cmd: str) -> None:
    _sh("ip", "netns", "exec", ns, *cmd)


@pytest.fixture
def mirror_namespaces():  # type: ignore[no-untyped-def]
    why = _why_no_netns()
    if why:
        pytest.skip(why)
    for ns in NS:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    try:
        c, s, m = NS
        for ns in NS:
            _sh("ip", "netns", "add", ns)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _in(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        # client <-> server, and server <-> mirror target (the VXLAN underlay, MTU 9001 as in a VPC)
        _sh("ip", "link", "add", "eth0", "netns", c, "type", "veth", "peer", "name", "eth0", "netns", s)
        _sh("ip", "link", "add", "eth1", "netns", s, "type", "veth", "peer", "name", "eth0", "netns", m)
        for ns, dev in ((c, "eth0"), (s, "eth0"), (s, "eth1"), (m, "eth0")):
            # no offloads: the mirrored frames and the tcpdump are wire-sized with real checksums
            subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off",
                            "tx", "off", "rx", "off"], capture_output=True)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        _sh("ip", "-n", s, "link", "set", "eth1", "mtu", "9001")
        _sh("ip", "-n", m, "link", "set", "eth0", "mtu", "9001")
        _sh("ip", "-n", c, "addr", "add", "10.77.0.10/24", "dev", "eth0")
        _sh("ip", "-n", s, "addr", "add", "10.77.0.20/24", "dev", "eth0")
        _sh("ip", "-n", s, "addr", "add", "10.77.2.1/24", "dev", "eth1")
        _sh("ip", "-n", m, "addr", "add", "10.77.2.2/24", "dev", "eth0")
        _sh("ip", "-n", s, "link", "add", "vxm", "type", "vxlan", "id", "4243", "dstport", "4789", "local",
            "10.77.2.1", "remote", "10.77.2.2", "dev", "eth1")
        _sh("ip", "-n", s, "link", "set", "vxm", "up")
        _in(s, "tc", "qdisc", "add", "dev", "eth0", "clsact")
        for way in ("ingress", "egress"):
            _in(s, "tc", "filter", "add", "dev", "eth0", way, "protocol", "all", "prio", "1", "u32", "match", "u32",
                "0", "0", "action", "mirred", "egress", "mirror", "dev", "vxm")
        yield NS
    finally:
        for ns in NS:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _wait_port(ns: str, port: int) -> None:
    for _ in range(100):
        r = subprocess.run(["ip", "netns", "exec", ns, "ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                           text=True)
        if r.stdout.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"port {port} never listened in {ns}")


@pytest.mark.slow
def test_kernel_mirror_in_namespaces_equals_a_tcpdump_of_the_interface(mirror_namespaces, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c, s, m = mirror_namespaces
    out, tap = tmp_path / "out", tmp_path / "eth0.pcap"
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("hello\n" * 200)
    _sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=www.example.com",
        "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem"))
    # bound to any address, as a mirror target usually is: IP_PKTINFO says which address was mirrored to
    listener, _ = _start_listen(out, "--window", "2s", "--vpc", "10.77.0.0/16", netns=m, bind="0.0.0.0", port="4789")
    dump = subprocess.Popen(["ip", "netns", "exec", s, "tcpdump", "-i", "eth0", "-n", "-U", "--immediate-mode", "-s",
                             "0", "-w", str(tap), "ip"], stderr=subprocess.PIPE, text=True)
    # and a capture of the mirror target's own interface: the VXLAN datagrams as a file
    target_tap = tmp_path / "target.pcap"
    target_dump = subprocess.Popen(["ip", "netns", "exec", m, "tcpdump", "-i", "eth0", "-n", "-U", "--immediate-mode",
                                    "-s", "0", "-w", str(target_tap), "udp", "port", "4789"], stderr=subprocess.PIPE,
                                   text=True)
    servers = []
    try:
        for d in (dump, target_dump):
            assert d.stderr is not None
            first = d.stderr.readline()  # "tcpdump: listening on eth0, ..." (or why not)
            assert "listening on" in first, first
        servers.append(subprocess.Popen(["ip", "netns", "exec", s, sys.executable, "-m", "http.server", "80", "--bind",
                                         "10.77.0.20", "--directory", str(tmp_path / "www")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        servers.append(subprocess.Popen(["ip", "netns", "exec", s, "openssl", "s_server", "-quiet", "-www",
                                         "-accept", "443", "-cert", str(tmp_path / "c.pem"), "-key",
                                         str(tmp_path / "k.pem")], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
        _wait_port(s, 80)
        _wait_port(s, 443)
        for url in ("http://10.77.0.20/index.html", "https://www.example.com/", "http://10.77.0.20/missing"):
            _in(c, "curl", "-sS", "-k", "-o", "/dev/null", "--max-time", "10", "--resolve",
                "www.example.com:443:10.77.0.20", url)
        time.sleep(0.5)
    finally:
        for p in servers:
            p.terminate()
            p.wait(timeout=10)
        time.sleep(0.3)
        for d in (dump, target_dump):
            d.terminate()
            d.communicate(timeout=10)
        rc, err, _ = _stop(listener)
    assert rc == 0, err
    want = analyzer.analyze([str(tap)], frames=("flows",)).flows
    got = _flows(out)
    assert len(want) == 3 and set(got["vni"]) == {4243} and set(got["outer_src_ip"]) == {"10.77.2.1"}
    assert sorted_keys(got).equals(sorted_keys(want)), (sorted_keys(got).T, sorted_keys(want).T)
    # the file of the target's interface (real kernel VXLAN in a pcap) gives them too, vantage included
    from_file = analyzer.analyze([str(target_tap)], frames=("flows",)).flows
    assert sorted_keys(from_file).equals(sorted_keys(got)) and not from_file["truncated"].any()
    if "recvmmsg" in err:  # (the recvfrom fallback knows only the bound address, 0.0.0.0)
        assert set(from_file["outer_dst_ip"]) == set(got["outer_dst_ip"]) == {"10.77.2.2"}
        assert {a for st in _stats(out) for a in st["targets"]} == {"10.77.2.2"}
    assert set(got["app_protocol"]) == {"http", "tls"} and "verdict" in got  # judged per window
    t = _stats(out)[-1]["total_counters"]
    # every mirrored frame arrived; those that are not IP (ARP) are in no flow (nor in the "ip" tcpdump)
    assert t["received"] == t["decapsulated"]
    in_flows = int(want["packets_to_server"].sum() + want["packets_to_client"].sum())
    assert t["decapsulated"] - t["inner_not_ip"] == in_flows
