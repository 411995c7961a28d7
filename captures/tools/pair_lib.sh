# shellcheck shell=bash
# The bench the group capture scripts record on (make_{data,mail,net,proxy}_captures.sh): a client
# namespace itc-$GROUP-cli (10.$NET.0.10) and a server namespace itc-$GROUP-srv (10.$NET.0.20) joined
# by one veth pair, IPv6 off and offloads off (so a capture shows wire-sized frames with real
# checksums); tcpdump records on the server's side. Nothing here leaves the machine.
#
# The caller sets GROUP (its name), NET (the second octet of its /24, also in the veth MACs), OUT and
# PY, sources this file, checks root and its own tools (with `die`), then calls `pair_setup`, which
# makes the work dir ($WORK: $LOG, the $EXPECT list, tcpdump's stderr) and the namespaces, both
# removed again at exit (KEEP_WORK=1 keeps the work dir). The four scripts once carried their own
# copies of these helpers; they drifted apart only in details (log widths, sleeps), kept here once.

die() { echo "make_${GROUP}_captures: $*" >&2; exit 1; }
ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

kill_ns() {  # ns: its processes, then itself (left over by an earlier, killed run, or at exit)
  local pid
  ns_exists "$1" || return 0
  for pid in $(ip netns pids "$1" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  ip netns del "$1" 2>/dev/null
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 0.3
  kill_ns "$NS_C"; kill_ns "$NS_S"
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}

pair_setup() {
  WORK=$(mktemp -d "/tmp/itc-$GROUP-captures.XXXXXX")
  chmod 755 "$WORK"  # the daemons that drop privileges read their configuration and keys here
  LOG=$WORK/make_${GROUP}_captures.log
  EXPECT=$WORK/expect.tsv
  : > "$EXPECT"
  mkdir -p "$OUT"
  echo "work dir $WORK (log: $LOG)"
  NS_C=itc-$GROUP-cli NS_S=itc-$GROUP-srv
  C4=10.$NET.0.10 S4=10.$NET.0.20
  PIDS=()
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  kill_ns "$NS_C"; kill_ns "$NS_S"
  local ns mac
  mac=02:00:0a:$(printf %02x "$NET"):00
  for ns in $NS_C $NS_S; do
    ip netns add "$ns" || die "ip netns add $ns"
    ip -n "$ns" link set lo up
    inns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  ip link add name eth0 netns "$NS_C" address "$mac:0a" type veth peer name eth0 netns "$NS_S" address "$mac:14" \
    || die "veth"
  for ns in $NS_C $NS_S; do
    inns "$ns" ethtool -K eth0 tso off gso off gro off tx off rx off >/dev/null 2>&1
    ip -n "$ns" link set eth0 up
  done
  ip -n "$NS_C" addr add "$C4/24" dev eth0; ip -n "$NS_S" addr add "$S4/24" dev eth0
}

CAP_PID=
cap_start() {  # file filter: tcpdump on the server's eth0, returns once it listens
  local _
  rm -f "$OUT/$1"
  ip netns exec "$NS_S" tcpdump -i eth0 -n -U --immediate-mode -s 0 -Z root -w "$OUT/$1" "$2" 2> "$WORK/tcpdump.err" &
  CAP_PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$WORK/tcpdump.err" 2>/dev/null && return 0; sleep 0.05; done
  echo "tcpdump did not start for $1: $(cat "$WORK/tcpdump.err")" | tee -a "$LOG"
}
report() {  # file: its packet count and size, on the terminal and in the log
  printf '%-38s %6s packets %7s bytes\n' "$1" "$(capinfos -c -M -T "$OUT/$1" 2>/dev/null | awk -F'\t' 'NR==2{print $2}')" \
    "$(stat -c %s "$OUT/$1")" | tee -a "$LOG"
}
cap_stop() {  # file: let the last packets reach tcpdump, stop it, report
  sleep 0.4
  kill -TERM "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null
  report "$1"
}
wait_port() {  # port [tcp|udp]: until a server in the server namespace listens on it
  local flag=-ltnH _
  [ "${2:-tcp}" = udp ] && flag=-lunH
  for _ in $(seq 200); do inns "$NS_S" ss $flag "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  echo "port $1 never listened" | tee -a "$LOG"; return 1
}
SRV=
srv() {  # cmd...: a server in the background, in the server namespace ($SRV: its pid)
  echo "+ [srv] $*" >> "$LOG"
  ip netns exec "$NS_S" "$@" >> "$LOG" 2>&1 &
  SRV=$!; PIDS+=("$SRV")
}
srv_stop() {  # [pid] (default $SRV): ask it to end, give it 5 s, then kill it
  local pid=${1:-$SRV} _
  kill "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  return 0
}
cli() {  # cmd...: a client in the client namespace, with a timeout; its failure is logged, not fatal
  echo "+ [cli] $*" >> "$LOG"
  inns "$NS_C" timeout 20 "$@" >> "$LOG" 2>&1
  local rc=$?
  [ $rc = 0 ] || echo "  (client exit $rc)" >> "$LOG"
  return 0
}
expect() {  # file json: the facts the group's manifest will hold for that capture
  printf '%s\t%s\n' "$1" "$(printf '%s' "$2" | tr '\n' ' ')" >> "$EXPECT"
}
write_manifest() {  # tools-json: captures/manifest.$GROUP.json from the expectations and the tools' versions
  "$PY" - "$EXPECT" "$OUT/manifest.$GROUP.json" "$1" "captures/make_${GROUP}_captures.sh" <<'PYEOF'
import datetime, json, sys
expect, out, tools, script = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
captures = {}
for line in open(expect):
    name, facts = line.rstrip("\n").split("\t", 1)
    captures[name] = json.loads(facts)
doc = {"schema": 1, "generated_by": script,
       "recorded_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
       "tools": tools, "captures": captures}
with open(out, "w") as fh:
    json.dump(doc, fh, indent=2)
    fh.write("\n")
PYEOF
}
tool_version() {  # command...: the third word of its first line of output (tshark/tcpdump --version)
  "$@" 2>/dev/null | head -1 | awk '{print $3}'  # stderr: tshark warns there when run as root
}
