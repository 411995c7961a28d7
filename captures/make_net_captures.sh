#!/usr/bin/env bash
# Record the captures of the directory, management and remote-access dissectors (group "net"):
# slapd (simple bind, StartTLS), snmpd (v2c, v3 authPriv and authNoPriv), telnetd (a login), dnsmasq
# (DNS over UDP and TCP), chronyd (NTP), logger (syslog over UDP). Real software talking inside two
# network namespaces this script creates and deletes (itc-net-cli 10.81.0.10, itc-net-srv
# 10.81.0.20); nothing leaves the machine. Writes small pcaps into captures/ and their facts into
# captures/manifest.net.json (checked by tests/captures/test_net_captures.py, with tshark).
#
#   sudo captures/make_net_captures.sh            # record into captures/
#   sudo captures/make_net_captures.sh --install  # apt-install the tools first
#   OUT=/tmp/x captures/make_net_captures.sh      # write somewhere else
#
# Credentials are fake: user alice, passwords s3cret-<protocol>.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
TOOLS=$HERE/tools
PY=${PYTHON:-python3}

if [ "${1:-}" = "--install" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=900 tcpdump tshark iproute2 \
    ethtool openssl slapd ldap-utils snmpd snmp dnsmasq-base bind9-dnsutils inetutils-telnetd inetutils-telnet \
    chrony socat bsdutils >/dev/null
fi

die() { echo "make_net_captures: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tcpdump)"
for c in ip tcpdump tshark capinfos ethtool openssl slapd slapadd ldapwhoami snmpd snmpget dnsmasq dig \
    telnet chronyd logger socat; do
  command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || die "missing $c (try --install)"
done
[ -x /usr/sbin/telnetd ] || die "missing /usr/sbin/telnetd (try --install)"
export PATH=$PATH:/usr/sbin

W=$(mktemp -d /tmp/itc-net-captures.XXXXXX)
LOG=$W/make.log
EXPECT=$W/expect.tsv
: > "$EXPECT"
mkdir -p "$OUT"
echo "work dir $W (log: $LOG)"

NS_C=itc-net-cli NS_S=itc-net-srv
C4=10.81.0.10 S4=10.81.0.20
PIDS=()
ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
cleanup() {
  local pid ns
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 0.2
  for ns in $NS_C $NS_S; do
    if ns_exists "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    fi
  done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for ns in $NS_C $NS_S; do ns_exists "$ns" && { for p in $(ip netns pids "$ns"); do kill -9 "$p"; done; ip netns del "$ns"; }; done

inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
for ns in $NS_C $NS_S; do
  ip netns add $ns || die "ip netns add $ns"; ip -n $ns link set lo up
  inns $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add name eth0 netns $NS_C address 02:00:0a:51:00:0a type veth peer name eth0 netns $NS_S address 02:00:0a:51:00:14 \
  || die "veth"
for ns in $NS_C $NS_S; do inns $ns ethtool -K eth0 tso off gso off gro off tx off rx off >/dev/null 2>&1; ip -n $ns link set eth0 up; done
ip -n $NS_C addr add $C4/24 dev eth0; ip -n $NS_S addr add $S4/24 dev eth0

CAP_PID=
cap_start() {  # file filter
  rm -f "$OUT/$1"
  ip netns exec $NS_S tcpdump -i eth0 -n -U --immediate-mode -s 0 -Z root -w "$OUT/$1" "$2" 2> "$W/tcpdump.err" &
  CAP_PID=$!
  local _
  for _ in $(seq 100); do grep -q "listening on" "$W/tcpdump.err" 2>/dev/null && return 0; sleep 0.05; done
  echo "tcpdump did not start for $1" | tee -a "$LOG"
}
cap_stop() {
  sleep 0.3; kill -TERM "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null
  printf '%-28s %5s packets %6s bytes\n' "$1" "$(capinfos -c -M -T "$OUT/$1" 2>/dev/null | awk -F'\t' 'NR==2{print $2}')" \
    "$(stat -c %s "$OUT/$1")" | tee -a "$LOG"
}
wait_port() {  # port [tcp|udp]
  local flag=-ltnH _; [ "${2:-tcp}" = udp ] && flag=-lunH
  for _ in $(seq 100); do inns $NS_S ss $flag "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  echo "port $1 never listened" | tee -a "$LOG"; return 1
}
SRV=
srv() { echo "+ [srv] $*" >> "$LOG"; ip netns exec $NS_S "$@" >> "$LOG" 2>&1 & SRV=$!; PIDS+=("$SRV"); }
srv_stop() { kill "${1:-$SRV}" 2>/dev/null; wait "${1:-$SRV}" 2>/dev/null; return 0; }
cli() { echo "+ [cli] $*" >> "$LOG"; inns $NS_C timeout 20 "$@" >> "$LOG" 2>&1 || echo "  (client exit $?)" >> "$LOG"; return 0; }
expect() { printf '%s\t%s\n' "$1" "$(printf '%s' "$2" | tr '\n' ' ')" >> "$EXPECT"; }

# ================================================================== LDAP (slapd)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/ldap.key" -out "$W/ldap.crt" -days 30 \
  -subj "/CN=ldap.example.org" >> "$LOG" 2>&1
mkdir -p "$W/ldapdb"
cat > "$W/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $W/slapd.pid
TLSCertificateFile $W/ldap.crt
TLSCertificateKeyFile $W/ldap.key
database mdb
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw admin-not-used
directory $W/ldapdb
access to * by * read
CONF
cat > "$W/base.ldif" <<LDIF
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: cn=alice,dc=example,dc=org
objectClass: inetOrgPerson
cn: alice
sn: Liddell
userPassword: s3cret-ldap
LDIF
slapadd -f "$W/slapd.conf" -l "$W/base.ldif" >> "$LOG" 2>&1 || die "slapadd (see $LOG)"
srv slapd -f "$W/slapd.conf" -h "ldap://$S4:389/" -d 0; SLAPD=$SRV
wait_port 389
F=ldap_simple_bind.pcap
cap_start $F "tcp port 389"
cli ldapsearch -x -H ldap://$S4 -D cn=alice,dc=example,dc=org -w s3cret-ldap -b dc=example,dc=org "(cn=alice)" cn
cli ldapsearch -x -H ldap://$S4 -b "" -s base supportedExtension
cap_stop $F
expect $F '{"description": "LDAP simple bind (cn=alice) then a search, and an anonymous bind reading the root DSE (supportedExtension lists StartTLS), ldapsearch -> slapd",
  "tool": "ldapsearch -> slapd", "transport": "tcp", "client": "10.81.0.10", "server": "10.81.0.20", "server_port": 389,
  "app_protocol": "ldap", "encrypted": false, "protection": "none", "flows": 2,
  "binds": [{"kind": "simple", "dn": "cn=alice,dc=example,dc=org", "result": 0}, {"kind": "anonymous", "dn": "", "result": 0}],
  "starttls": [null, "offered_not_used"],
  "credentials": [{"protocol": "ldap", "mechanism": "simple", "username": "cn=alice,dc=example,dc=org", "secret_length": 11, "accepted": true}]}'
F=ldap_starttls.pcap
cap_start $F "tcp port 389"
LDAPTLS_REQCERT=never cli ldapwhoami -ZZ -x -H ldap://$S4 -D cn=alice,dc=example,dc=org -w s3cret-ldap
cap_stop $F
srv_stop $SLAPD
expect $F '{"description": "LDAP StartTLS extended operation then a simple bind inside TLS, ldapwhoami -ZZ -> slapd (self-signed certificate)",
  "tool": "ldapwhoami -ZZ -> slapd", "transport": "tcp", "client": "10.81.0.10", "server": "10.81.0.20", "server_port": 389,
  "app_protocol": "ldap", "encrypted": true, "protection": "starttls", "starttls": "completed", "tls_version": "TLS 1.3",
  "credentials": []}'

# ================================================================== SNMP (snmpd)
mkdir -p "$W/snmp"
cat > "$W/snmpd.conf" <<CONF
rocommunity s3cret-snmp 10.81.0.0/16
createUser alice SHA s3cret-snmp-auth AES s3cret-snmp-priv
createUser bob SHA s3cret-snmp-auth
rouser alice priv
rouser bob auth
CONF
export SNMP_PERSISTENT_DIR=$W/snmp MIBS=
srv snmpd -f -Lo -C -c "$W/snmpd.conf" -p "$W/snmpd.pid" "udp:$S4:161"; SNMPD=$SRV
wait_port 161 udp
F=snmp_v2c.pcap
cap_start $F "udp port 161"
cli snmpget -v2c -c s3cret-snmp -On $S4 1.3.6.1.2.1.1.1.0 1.3.6.1.2.1.1.5.0
cap_stop $F
expect $F '{"description": "SNMPv2c get-request with community s3cret-snmp and its response, snmpget -> snmpd",
  "tool": "snmpget -> snmpd", "transport": "udp", "client": "10.81.0.10", "server": "10.81.0.20", "server_port": 161,
  "app_protocol": "snmp", "encrypted": false, "protection": "none", "snmp_version": "2c", "snmp_pdu": "get-request",
  "credentials": [{"protocol": "snmp", "mechanism": "community", "username": null, "secret_length": 11, "accepted": true}]}'
F=snmp_v3.pcap
cap_start $F "udp port 161"
cli snmpget -v3 -l authPriv -u alice -a SHA -A s3cret-snmp-auth -x AES -X s3cret-snmp-priv -On $S4 1.3.6.1.2.1.1.1.0
cli snmpget -v3 -l authNoPriv -u bob -a SHA -A s3cret-snmp-auth -On $S4 1.3.6.1.2.1.1.5.0
cap_stop $F
srv_stop $SNMPD
expect $F '{"description": "SNMPv3: user alice authPriv (SHA/AES) and user bob authNoPriv (SHA), each after engine-ID discovery, snmpget -> snmpd",
  "tool": "snmpget -> snmpd", "transport": "udp", "client": "10.81.0.10", "server": "10.81.0.20", "server_port": 161,
  "app_protocol": "snmp", "snmp_version": "3",
  "sessions": [{"user": "alice", "level": "authPriv", "encrypted": true, "protection": "snmpv3"},
               {"user": "bob", "level": "authNoPriv", "encrypted": false, "protection": "none"}],
  "credentials": []}'

# ================================================================== Telnet (inetutils telnetd)
srv socat TCP-LISTEN:23,bind=$S4,reuseaddr EXEC:"/usr/sbin/telnetd -h -E $TOOLS/net_fake_login.sh",nofork; TELNETD=$SRV
wait_port 23
F=telnet_login.pcap
cap_start $F "tcp port 23"
cli "$PY" "$TOOLS/net_telnet_client.py" $S4 23 "login: =alice" "Password: =wrong-telnet" "login: =alice" \
  "Password: =s3cret-telnet" "$ =hostname"
cap_stop $F
srv_stop $TELNETD
expect $F '{"description": "Telnet: option negotiation, a failed login then a successful one (user alice), then a command; inetutils telnet (driven through a pty) -> inetutils telnetd running a scripted login program",
  "tool": "inetutils telnet -> socat + inetutils telnetd -E", "transport": "tcp", "client": "10.81.0.10", "server": "10.81.0.20",
  "server_port": 23, "app_protocol": "telnet", "encrypted": false, "protection": "none", "telnet_username": "alice",
  "credentials": [{"protocol": "telnet", "mechanism": "login", "username": "alice", "secret_length": 12, "accepted": false},
                  {"protocol": "telnet", "mechanism": "login", "username": "alice", "secret_length": 13, "accepted": true}]}'

# ================================================================== DNS (dnsmasq)
srv dnsmasq -d -k --no-resolv --no-hosts --listen-address=$S4 --bind-interfaces --address=/www.example.org/10.81.0.20 \
  --pid-file="$W/dnsmasq.pid"; DNSMASQ=$SRV
wait_port 53 udp
F=dns_dnsmasq.pcap
cap_start $F "port 53"
cli dig @$S4 www.example.org A +norecurse +noedns
cli dig @$S4 +tcp www.example.org A
cli dig @$S4 nope.example.net AAAA
cap_stop $F
srv_stop $DNSMASQ
expect $F '{"description": "DNS: an A query over UDP, the same over TCP, an AAAA query dnsmasq refuses (no upstream), dig -> dnsmasq",
  "tool": "dig -> dnsmasq", "server": "10.81.0.20", "server_port": 53, "app_protocol": "dns", "encrypted": false, "protection": "none",
  "queries": [{"transport": "udp", "query": "www.example.org", "qtype": 1, "rcode": 0, "answers": 1},
              {"transport": "tcp", "query": "www.example.org", "qtype": 1, "rcode": 0, "answers": 1},
              {"transport": "udp", "query": "nope.example.net", "qtype": 28, "rcode": 5, "answers": 0}]}'

# ================================================================== NTP (chronyd)
cat > "$W/chrony-srv.conf" <<CONF
local stratum 8
allow 10.81.0.0/16
bindaddress $S4
port 123
cmdport 0
pidfile $W/chronyd-srv.pid
driftfile $W/chrony.drift
CONF
srv chronyd -d -x -f "$W/chrony-srv.conf"; CHRONYD=$SRV
wait_port 123 udp
F=ntp_chrony.pcap
cap_start $F "udp port 123"
cli chronyd -Q -f /dev/null -t 8 "server $S4 iburst maxsamples 2" "cmdport 0" "pidfile $W/chronyd-cli.pid"
cap_stop $F
srv_stop $CHRONYD
expect $F '{"description": "NTPv4 client/server exchanges (iburst), chronyd -Q -> chronyd serving its local clock at stratum 8",
  "tool": "chronyd -Q -> chronyd", "transport": "udp", "client": "10.81.0.10", "server": "10.81.0.20", "server_port": 123,
  "app_protocol": "ntp", "encrypted": false, "protection": "none", "ntp_version": 4, "ntp_mode": "client", "ntp_stratum": 8}'

# ================================================================== Syslog over UDP (logger)
srv socat -u UDP-RECV:514,bind=$S4 OPEN:/dev/null; SYSLOG=$SRV
wait_port 514 udp
F=syslog_udp.pcap
cap_start $F "udp port 514"
cli logger -n $S4 -P 514 -d --rfc3164 -p auth.notice -t itc-net "rfc3164 message from alice"
cli logger -n $S4 -P 514 -d --rfc5424 -p local0.err -t itc-net "rfc5424 message"
cap_stop $F
srv_stop $SYSLOG
expect $F '{"description": "Syslog over UDP: one RFC 3164 message (auth.notice) and one RFC 5424 message (local0.err), logger -> socat",
  "tool": "logger -> socat", "transport": "udp", "client": "10.81.0.10", "server": "10.81.0.20", "server_port": 514,
  "app_protocol": "syslog", "encrypted": false, "protection": "none",
  "messages": [{"format": "rfc3164", "facility": 4, "severity": 5}, {"format": "rfc5424", "facility": 16, "severity": 3}]}'

# ================================================================== manifest
TOOLVERS=$(printf '{"slapd": "%s", "net-snmp": "%s", "inetutils": "%s", "dnsmasq": "%s", "chrony": "%s", "util-linux logger": "%s", "tcpdump": "%s", "tshark": "%s", "kernel": "%s"}' \
  "$(dpkg-query -W -f '${Version}' slapd)" "$(dpkg-query -W -f '${Version}' snmpd)" "$(dpkg-query -W -f '${Version}' inetutils-telnetd)" \
  "$(dpkg-query -W -f '${Version}' dnsmasq-base)" "$(dpkg-query -W -f '${Version}' chrony)" "$(dpkg-query -W -f '${Version}' bsdutils)" \
  "$(tcpdump --version 2>&1 | head -1 | awk '{print $3}')" "$(tshark --version 2>/dev/null | head -1 | awk '{print $3}')" "$(uname -r)")
"$PY" - "$EXPECT" "$OUT/manifest.net.json" "$TOOLVERS" <<'PYEOF'
import datetime, json, sys
expect, out, tools = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
captures = {}
for line in open(expect):
    name, facts = line.rstrip("\n").split("\t", 1)
    captures[name] = json.loads(facts)
json.dump({"schema": 1, "generated_by": "captures/make_net_captures.sh",
           "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "tools": tools, "captures": captures}, open(out, "w"), indent=1, sort_keys=False)
open(out, "a").write("\n")
PYEOF
echo "done: $(ls "$OUT" | grep -cE '^(ldap|snmp|telnet|dns|ntp|syslog)_') net captures"
