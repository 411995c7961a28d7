# shellcheck shell=bash
# The helpers every capture script records with: network namespaces, veth pairs without offloads,
# tcpdump started and stopped, servers and clients run inside a namespace, the expected facts. Sourced
# by make_captures.sh and make_tunnels_captures.sh directly, and by tools/pair_lib.sh (the two-namespace
# bench of the data, mail, net and proxy groups). Nothing here leaves the machine.
#
# The caller sets SCRIPT (its name, for `die`), OUT, and ALL_NS (its namespaces) before `ns_begin`, which
# makes the work dir ($WORK: $LOG, the $EXPECT list, tcpdump's stderr; KEEP_WORK=1 keeps it), removes the
# namespaces an earlier, killed run left behind, and removes them again at exit with every server.
# Optional knobs: CLI_TIMEOUT (seconds a client may take, 20), SRV_GRACE (seconds a server that ends by
# itself, such as `openssl s_server -naccept 1`, is given before it is asked to stop, 0).
#
# The scripts once carried copies of these; the copies had drifted only in details (log widths,
# sleeps, timeouts), which are now the knobs above or the longer of the two.

die() { echo "$SCRIPT: $*" >&2; exit 1; }
ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

kill_ns() {  # ns: its processes (asked, then killed), then the namespace itself
  local pid
  ns_exists "$1" || return 0
  for pid in $(ip netns pids "$1" 2>/dev/null); do kill "$pid" 2>/dev/null; done
  sleep 0.2
  for pid in $(ip netns pids "$1" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  ip netns del "$1" 2>/dev/null
}

ns_cleanup() {
  local pid ns
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for ns in $ALL_NS; do kill_ns "$ns"; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}

ns_begin() {  # work-dir-prefix: the work dir, the log, the cleanup at exit, no namespace left from before
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$WORK"  # the daemons that drop privileges read their configuration and keys here
  LOG=$WORK/$SCRIPT.log
  EXPECT=$WORK/expect.tsv
  : > "$EXPECT"
  mkdir -p "$OUT"
  echo "work dir $WORK (log: $LOG)"
  PIDS=()
  trap ns_cleanup EXIT
  trap 'exit 130' INT TERM
  local ns
  for ns in $ALL_NS; do kill_ns "$ns"; done
}

mkns() {  # name [noipv6]
  ip netns add "$1" || die "ip netns add $1"
  ip -n "$1" link set lo up
  if [ "${2:-}" = noipv6 ]; then  # no router solicitations / MLD noise
    inns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  fi
}
quiet_if() {  # ns dev: no offloads, so the capture shows wire-sized frames with real checksums
  inns "$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null 2>&1
}
veth() {  # nsA devA macA nsB devB macB
  ip link add name "$2" netns "$1" address "$3" type veth peer name "$5" netns "$4" address "$6" || die "veth $1/$2"
  quiet_if "$1" "$2"; quiet_if "$4" "$5"
  ip -n "$1" link set "$2" up; ip -n "$4" link set "$5" up
}

CAP_PID=
ns_cap_start() {  # ns iface file filter [tcpdump options...]: returns once tcpdump listens
  local ns=$1 ifc=$2 file=$3 filter=$4 _; shift 4
  rm -f "$OUT/$file"
  # (ip netns exec execs the program, so $! is tcpdump itself)
  ip netns exec "$ns" tcpdump -i "$ifc" -n -U --immediate-mode -s 0 -Z root "$@" -w "$OUT/$file" "$filter" \
    2> "$WORK/tcpdump.err" &
  CAP_PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$WORK/tcpdump.err" 2>/dev/null && return 0; sleep 0.05; done
  echo "tcpdump did not start for $file: $(cat "$WORK/tcpdump.err")" | tee -a "$LOG"
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
ns_wait_port() {  # ns port [tcp|udp]: until a server in ns listens on it (10 s at most)
  local flag=-ltnH _
  [ "${3:-tcp}" = udp ] && flag=-lunH
  for _ in $(seq 200); do inns "$1" ss $flag "sport = :$2" | grep -q . && return 0; sleep 0.05; done
  echo "port $2 never listened in $1" | tee -a "$LOG"; return 1
}
SRV=
ns_srv() {  # ns cmd...: a server in the background ($SRV: its pid)
  local ns=$1; shift
  echo "+ [$ns] $*" >> "$LOG"
  ip netns exec "$ns" "$@" >> "$LOG" 2>&1 &
  SRV=$!; PIDS+=("$SRV")
}
srv_stop() {  # [pid] (default $SRV): SRV_GRACE s to end by itself, then asked to; 5 s more, then killed
  local pid=${1:-$SRV} _
  for _ in $(seq $((${SRV_GRACE:-0} * 20))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  return 0
}
ns_cli() {  # ns cmd...: a client with a timeout; its failure is logged, not fatal
  local ns=$1; shift
  echo "+ [$ns] $*" >> "$LOG"
  inns "$ns" timeout "${CLI_TIMEOUT:-20}" "$@" >> "$LOG" 2>&1
  local rc=$?
  [ $rc = 0 ] || echo "  (client exit $rc)" >> "$LOG"
  return 0
}
expect() {  # file json: the facts the manifest will hold for that capture (see tools/manifest.py)
  printf '%s\t%s\n' "$1" "$(printf '%s' "$2" | tr '\n' ' ')" >> "$EXPECT"
}
