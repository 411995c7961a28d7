#!/usr/bin/env bash
# Record the captures of TLS behind proxies (group "proxy", issue 17 section 3): SOCKS 4, 4a and 5
# through OpenSSH's dynamic forwarding (`ssh -D`, a real SOCKS 4/5 server), SOCKS 5 with RFC 1929
# username/password through microsocks, and HTTP CONNECT through tinyproxy, each to an
# `openssl s_server` (TLS 1.2, so the certificate is visible), with curl as the client; plus
# server-only cuts (only the proxy's direction, as a one-sided mirror filter records it). Real
# software talking inside two network namespaces this script creates and deletes (itc-proxy-cli
# 10.85.0.10, itc-proxy-srv 10.85.0.20; the proxies reach the TLS server on the srv namespace's
# loopback, so only the client <-> proxy leg is on the captured veth); nothing leaves the machine.
# Writes small pcaps into captures/ and their facts into captures/manifest.proxy.json (checked by
# tests/captures/test_proxy_captures.py, with tshark).
#
#   sudo captures/make_proxy_captures.sh            # record into captures/
#   sudo captures/make_proxy_captures.sh --install  # apt-install the tools first
#   OUT=/tmp/x captures/make_proxy_captures.sh      # write somewhere else
#
# Credentials are fake: user alice, password s3cret-socks (and a wrong one, wrong-socks).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
PY=${PYTHON:-python3}

if [ "${1:-}" = "--install" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=900 tcpdump tshark iproute2 \
    ethtool openssl curl openssh-client openssh-server microsocks tinyproxy >/dev/null
fi

die() { echo "make_proxy_captures: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tcpdump)"
export PATH=$PATH:/usr/sbin
for c in ip tcpdump tshark capinfos ethtool openssl curl ssh ssh-keygen sshd microsocks tinyproxy; do
  command -v "$c" >/dev/null || die "missing $c (try --install)"
done

W=$(mktemp -d /tmp/itc-proxy-captures.XXXXXX)
chmod 755 "$W"
LOG=$W/make.log
EXPECT=$W/expect.tsv
: > "$EXPECT"
mkdir -p "$OUT"
echo "work dir $W (log: $LOG)"

NS_C=itc-proxy-cli NS_S=itc-proxy-srv
C4=10.85.0.10 S4=10.85.0.20
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
ip link add name eth0 netns $NS_C address 02:00:0a:55:00:0a type veth peer name eth0 netns $NS_S address 02:00:0a:55:00:14 \
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
report() {
  printf '%-34s %5s packets %6s bytes\n' "$1" "$(capinfos -c -M -T "$OUT/$1" 2>/dev/null | awk -F'\t' 'NR==2{print $2}')" \
    "$(stat -c %s "$OUT/$1")" | tee -a "$LOG"
}
cap_stop() { sleep 0.3; kill -TERM "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null; report "$1"; }
server_only() {  # source cut filter: only the proxy's direction, as a one-sided mirror filter records it
  tshark -r "$OUT/$1" -Y "$3" -w "$OUT/$2" 2>> "$LOG" || die "tshark cut $2"
  report "$2"
}
wait_port() {  # port [address]
  local _
  for _ in $(seq 100); do inns $NS_S ss -ltnH "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  echo "port $1 never listened" | tee -a "$LOG"; return 1
}
SRV=
srv() { echo "+ [srv] $*" >> "$LOG"; ip netns exec $NS_S "$@" >> "$LOG" 2>&1 & SRV=$!; PIDS+=("$SRV"); }
srv_stop() { kill "${1:-$SRV}" 2>/dev/null; wait "${1:-$SRV}" 2>/dev/null; return 0; }
cli() { echo "+ [cli] $*" >> "$LOG"; inns $NS_C timeout 20 "$@" >> "$LOG" 2>&1 || echo "  (client exit $?)" >> "$LOG"; return 0; }
expect() { printf '%s\t%s\n' "$1" "$(printf '%s' "$2" | tr '\n' ' ')" >> "$EXPECT"; }

# ------------------------------------------------------------------ the TLS server behind the proxies
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/tls.key" -out "$W/tls.crt" -days 30 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" >> "$LOG" 2>&1 || die "openssl req"
srv openssl s_server -accept 127.0.0.1:4433 -cert "$W/tls.crt" -key "$W/tls.key" -no_tls1_3 -www -quiet
wait_port 4433

# ------------------------------------------------------------------ OpenSSH dynamic forwarding (SOCKS 4/4a/5)
ssh-keygen -q -t ed25519 -N "" -f "$W/host_key" || die "ssh-keygen host"
ssh-keygen -q -t ed25519 -N "" -f "$W/id" || die "ssh-keygen id"
cp "$W/id.pub" "$W/authorized_keys"
mkdir -p /run/sshd
cat > "$W/sshd_config" <<CONF
ListenAddress 127.0.0.1:2222
HostKey $W/host_key
PidFile $W/sshd.pid
AuthorizedKeysFile $W/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
AllowTcpForwarding yes
CONF
srv /usr/sbin/sshd -D -e -f "$W/sshd_config"; SSHD=$SRV
wait_port 2222
srv ssh -N -D $S4:1080 -p 2222 -i "$W/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o ExitOnForwardFailure=yes -o BatchMode=yes root@127.0.0.1; SSHD_FWD=$SRV
wait_port 1080

F=socks5_ssh_tls.pcap
cap_start $F "tcp port 1080"
cli curl -sS -k --socks5-hostname $S4:1080 https://localhost:4433/ -o /dev/null
cap_stop $F
expect $F '{"description": "SOCKS 5 CONNECT to localhost:4433 by host name (no authentication), then TLS 1.2 with SNI localhost through the tunnel; curl --socks5-hostname -> ssh -D (OpenSSH dynamic forwarding) -> openssl s_server",
  "tool": "curl --socks5-hostname -> ssh -D -> openssl s_server", "transport": "tcp", "client": "10.85.0.10", "server": "10.85.0.20",
  "server_port": 1080, "app_protocol": "socks", "encrypted": true, "protection": "tls", "socks_version": "5",
  "socks_command": "connect", "socks_target_host": "localhost", "socks_target_port": 4433, "socks_reply": "succeeded",
  "socks_auth_method": "none", "tls_version": "TLS 1.2", "tls_server_name": "localhost", "cert_subject": "CN=localhost",
  "credentials": []}'
server_only $F socks5_ssh_tls_server_only.pcap "tcp.srcport==1080"
expect socks5_ssh_tls_server_only.pcap '{"description": "socks5_ssh_tls.pcap cut to the proxy'"'"'s direction only (tshark -Y tcp.srcport==1080): the SOCKS 5 replies, then the TLS 1.2 ServerHello, Certificate and encrypted records, no ClientHello",
  "tool": "tshark -Y tcp.srcport==1080 of socks5_ssh_tls.pcap", "transport": "tcp", "client": "10.85.0.10", "server": "10.85.0.20",
  "server_port": 1080, "visibility": "server_only", "app_protocol": "socks", "encrypted": true, "protection": "tls",
  "socks_version": "5", "socks_reply": "succeeded", "socks_auth_method": "none", "tls_version": "TLS 1.2",
  "cert_subject": "CN=localhost", "credentials": []}'

F=socks4_ssh_tls.pcap
cap_start $F "tcp port 1080"
cli curl -sS -k --socks4 $S4:1080 https://127.0.0.1:4433/ -o /dev/null
cli curl -sS -k --socks4a $S4:1080 https://localhost:4433/ -o /dev/null
cap_stop $F
srv_stop $SSHD_FWD
srv_stop $SSHD
expect $F '{"description": "SOCKS 4 CONNECT to 127.0.0.1:4433 (an address: TLS without SNI) and SOCKS 4a CONNECT to localhost:4433 (a host name), each then TLS 1.2; curl --socks4 / --socks4a -> ssh -D -> openssl s_server",
  "tool": "curl --socks4/--socks4a -> ssh -D -> openssl s_server", "transport": "tcp", "client": "10.85.0.10", "server": "10.85.0.20",
  "server_port": 1080, "app_protocol": "socks", "encrypted": true, "protection": "tls", "tls_version": "TLS 1.2",
  "flows": [{"socks_version": "4", "socks_target_host": "127.0.0.1", "socks_target_port": 4433, "socks_reply": "granted", "tls_server_name": null},
            {"socks_version": "4a", "socks_target_host": "localhost", "socks_target_port": 4433, "socks_reply": "granted", "tls_server_name": "localhost"}],
  "credentials": []}'

# ------------------------------------------------------------------ microsocks: SOCKS 5 with username/password (RFC 1929)
srv microsocks -i $S4 -p 1081 -u alice -P s3cret-socks; MICRO=$SRV
wait_port 1081
F=socks5_auth_tls.pcap
cap_start $F "tcp port 1081"
cli curl -sS -k --socks5 $S4:1081 --proxy-user alice:wrong-socks https://127.0.0.1:4433/ -o /dev/null
cli curl -sS -k --socks5-hostname $S4:1081 --proxy-user alice:s3cret-socks https://localhost:4433/ -o /dev/null
cap_stop $F
srv_stop $MICRO
expect $F '{"description": "SOCKS 5 with RFC 1929 username/password: a wrong password (refused), then the right one, CONNECT to localhost:4433 by host name and TLS 1.2; curl --socks5 --proxy-user -> microsocks -u alice -> openssl s_server",
  "tool": "curl --socks5(-hostname) --proxy-user -> microsocks -> openssl s_server", "transport": "tcp", "client": "10.85.0.10",
  "server": "10.85.0.20", "server_port": 1081, "app_protocol": "socks", "socks_version": "5", "socks_auth_method": "username_password",
  "flows": [{"socks_user": "alice", "encrypted": false, "protection": "none", "socks_reply": null},
            {"socks_user": "alice", "encrypted": true, "protection": "tls", "socks_target_host": "localhost", "socks_target_port": 4433,
             "socks_reply": "succeeded", "tls_version": "TLS 1.2"}],
  "secrets": ["wrong-socks", "s3cret-socks"],
  "credentials": [{"protocol": "socks", "mechanism": "user_pass", "username": "alice", "secret_length": 11, "accepted": false},
                  {"protocol": "socks", "mechanism": "user_pass", "username": "alice", "secret_length": 12, "accepted": true}]}'

# ------------------------------------------------------------------ tinyproxy: HTTP CONNECT
cat > "$W/tinyproxy.conf" <<CONF
Port 8888
Listen $S4
Timeout 30
Allow $C4
ConnectPort 4433
MaxClients 4
LogLevel Info
PidFile "$W/tinyproxy.pid"
CONF
srv tinyproxy -d -c "$W/tinyproxy.conf"; TINY=$SRV
wait_port 8888
F=http_connect_tls.pcap
cap_start $F "tcp port 8888"
cli curl -sS -k -p -x http://$S4:8888 https://localhost:4433/ -o /dev/null
cap_stop $F
srv_stop $TINY
expect $F '{"description": "HTTP CONNECT localhost:4433, 200 Connection established, then TLS 1.2 with SNI localhost; curl -p -x -> tinyproxy -> openssl s_server",
  "tool": "curl -p -x -> tinyproxy -> openssl s_server", "transport": "tcp", "client": "10.85.0.10", "server": "10.85.0.20",
  "server_port": 8888, "app_protocol": "http", "encrypted": true, "protection": "tls", "http_method": "CONNECT", "http_status": 200,
  "tls_version": "TLS 1.2", "tls_server_name": "localhost", "cert_subject": "CN=localhost", "credentials": []}'
server_only $F http_connect_tls_server_only.pcap "tcp.srcport==8888"
expect http_connect_tls_server_only.pcap '{"description": "http_connect_tls.pcap cut to the proxy'"'"'s direction only (tshark -Y tcp.srcport==8888): the 200 answer, then the TLS 1.2 server flight, no CONNECT and no ClientHello",
  "tool": "tshark -Y tcp.srcport==8888 of http_connect_tls.pcap", "transport": "tcp", "client": "10.85.0.10", "server": "10.85.0.20",
  "server_port": 8888, "visibility": "server_only", "app_protocol": "http", "encrypted": true, "protection": "tls", "http_status": 200,
  "tls_version": "TLS 1.2", "cert_subject": "CN=localhost", "credentials": []}'

# ================================================================== manifest
TOOLVERS=$(printf '{"openssh": "%s", "microsocks": "%s", "tinyproxy": "%s", "curl": "%s", "openssl": "%s", "tcpdump": "%s", "tshark": "%s", "kernel": "%s"}' \
  "$(dpkg-query -W -f '${Version}' openssh-server)" "$(dpkg-query -W -f '${Version}' microsocks)" "$(dpkg-query -W -f '${Version}' tinyproxy)" \
  "$(dpkg-query -W -f '${Version}' curl)" "$(openssl version | awk '{print $2}')" \
  "$(tcpdump --version 2>&1 | head -1 | awk '{print $3}')" "$(tshark --version 2>/dev/null | head -1 | awk '{print $3}')" "$(uname -r)")
"$PY" - "$EXPECT" "$OUT/manifest.proxy.json" "$TOOLVERS" <<'PYEOF'
import datetime, json, sys
expect, out, tools = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
captures = {}
for line in open(expect):
    name, facts = line.rstrip("\n").split("\t", 1)
    captures[name] = json.loads(facts)
json.dump({"schema": 1, "generated_by": "captures/make_proxy_captures.sh",
           "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "tools": tools, "captures": captures}, open(out, "w"), indent=1, sort_keys=False)
open(out, "a").write("\n")
PYEOF
echo "done: $(ls "$OUT" | grep -cE '^(socks[45]|http_connect)_') proxy captures"
