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

GROUP=proxy NET=85
# shellcheck source=tools/pair_lib.sh
. "$HERE/tools/pair_lib.sh"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tcpdump)"
export PATH=$PATH:/usr/sbin
for c in ip tcpdump tshark capinfos ethtool openssl curl ssh ssh-keygen sshd microsocks tinyproxy; do
  command -v "$c" >/dev/null || die "missing $c (try --install)"
done

pair_setup  # itc-proxy-cli 10.85.0.10, itc-proxy-srv 10.85.0.20; WORK, LOG, EXPECT and the helpers
server_only() {  # source cut filter: only the proxy's direction, as a one-sided mirror filter records it
  tshark -r "$OUT/$1" -Y "$3" -w "$OUT/$2" 2>> "$LOG" || die "tshark cut $2"
  report "$2"
}


# ------------------------------------------------------------------ the TLS server behind the proxies
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/tls.key" -out "$WORK/tls.crt" -days 30 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" >> "$LOG" 2>&1 || die "openssl req"
srv openssl s_server -accept 127.0.0.1:4433 -cert "$WORK/tls.crt" -key "$WORK/tls.key" -no_tls1_3 -www -quiet
wait_port 4433

# ------------------------------------------------------------------ OpenSSH dynamic forwarding (SOCKS 4/4a/5)
ssh-keygen -q -t ed25519 -N "" -f "$WORK/host_key" || die "ssh-keygen host"
ssh-keygen -q -t ed25519 -N "" -f "$WORK/id" || die "ssh-keygen id"
cp "$WORK/id.pub" "$WORK/authorized_keys"
mkdir -p /run/sshd
cat > "$WORK/sshd_config" <<CONF
ListenAddress 127.0.0.1:2222
HostKey $WORK/host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
AllowTcpForwarding yes
CONF
srv /usr/sbin/sshd -D -e -f "$WORK/sshd_config"; SSHD=$SRV
wait_port 2222
srv ssh -N -D $S4:1080 -p 2222 -i "$WORK/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
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
cat > "$WORK/tinyproxy.conf" <<CONF
Port 8888
Listen $S4
Timeout 30
Allow $C4
ConnectPort 4433
MaxClients 4
LogLevel Info
PidFile "$WORK/tinyproxy.pid"
CONF
srv tinyproxy -d -c "$WORK/tinyproxy.conf"; TINY=$SRV
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
  "$(tool_version tcpdump --version)" "$(tool_version tshark --version)" "$(uname -r)")
write_manifest "$TOOLVERS"
echo "done: $(ls "$OUT" | grep -cE '^(socks[45]|http_connect)_') proxy captures"
