# shellcheck shell=bash
# The bench the group capture scripts record on (make_{data,mail,net,proxy}_captures.sh): a client
# namespace itc-$GROUP-cli (10.$NET.0.10) and a server namespace itc-$GROUP-srv (10.$NET.0.20) joined
# by one veth pair, IPv6 off and offloads off (so a capture shows wire-sized frames with real
# checksums); tcpdump records on the server's side. Nothing here leaves the machine.
#
# The caller sets GROUP (its name), NET (the second octet of its /24, also in the veth MACs), OUT and
# PY, sources this file, checks root and its own tools (with `die`), then calls `pair_setup`, which
# makes the work dir ($WORK: $LOG, the $EXPECT list, tcpdump's stderr) and the namespaces, both
# removed again at exit (KEEP_WORK=1 keeps the work dir). The helpers are tools/ns_lib.sh's, which
# make_captures.sh and make_tunnels_captures.sh use with a namespace argument; here the namespace
# is implied: tcpdump and servers in the server namespace, clients in the client namespace.

SCRIPT=make_${GROUP}_captures
# shellcheck source=ns_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ns_lib.sh"

pair_setup() {
  NS_C=itc-$GROUP-cli NS_S=itc-$GROUP-srv
  ALL_NS="$NS_C $NS_S"
  C4=10.$NET.0.10 S4=10.$NET.0.20
  ns_begin "itc-$GROUP-captures"
  local mac
  mac=02:00:0a:$(printf %02x "$NET"):00
  mkns "$NS_C" noipv6; mkns "$NS_S" noipv6
  veth "$NS_C" eth0 "$mac:0a" "$NS_S" eth0 "$mac:14"
  ip -n "$NS_C" addr add "$C4/24" dev eth0; ip -n "$NS_S" addr add "$S4/24" dev eth0
}

cap_start() { ns_cap_start "$NS_S" eth0 "$1" "$2"; }  # file filter
wait_port() { ns_wait_port "$NS_S" "$@"; }            # port [tcp|udp]
srv() { ns_srv "$NS_S" "$@"; }                        # cmd...
cli() { ns_cli "$NS_C" "$@"; }                        # cmd...

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
