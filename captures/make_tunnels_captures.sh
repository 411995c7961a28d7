#!/usr/bin/env bash
# Record the "tunnels" group's sample captures (issue 11: SMB2/3, WireGuard, OpenVPN) into
# captures/, with their facts in captures/manifest.tunnels.json (same shape as manifest.json).
#
# Real software in network namespaces this script creates and deletes (itc-tunnels-*), addresses in
# 10.83.x.x only; nothing leaves the machine. The helpers (mkns, veth, ns_cap_start/cap_stop, ns_srv,
# ns_cli, expect) are tools/ns_lib.sh's, as make_captures.sh's are.
#
#   sudo captures/make_tunnels_captures.sh             # record into captures/
#   sudo captures/make_tunnels_captures.sh --install   # apt-get the tools first
#   OUT=/tmp/x captures/make_tunnels_captures.sh       # write somewhere else
#   ONLY="smb wg" ...                                  # record only these parts (smb wg ovpn)
#
# Needs root, iproute2, tcpdump, tshark, capinfos, ethtool, openssl, samba + smbclient,
# wireguard-tools + wireguard-go (userspace WireGuard on /dev/net/tun: the kernel here has no
# wireguard module), openvpn (needs /dev/net/tun).
# IPsec is not recorded: this kernel has XFRM but no ESP transform ("ip xfrm state add ... proto
# esp" fails with "Requested type not found"), so strongSwan could not install its SAs; the IKE and
# ESP tests use the shared corpus's real captures instead.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
PY=${PYTHON:-python3}
ONLY=${ONLY:-smb wg ovpn}
T0=$(date +%s)

if [ "${1:-}" = "--install" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tcpdump tshark iproute2 ethtool \
    samba smbclient wireguard-tools wireguard-go openvpn openssl >/dev/null
fi

SCRIPT=make_tunnels_captures
# shellcheck source=tools/ns_lib.sh
. "$HERE/tools/ns_lib.sh"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tcpdump)"
for c in ip tcpdump tshark capinfos timeout ss; do command -v "$c" >/dev/null || die "missing $c (try --install)"; done
part() { case " $ONLY " in *" $1 "*) return 0;; esac; return 1; }

# ------------------------------------------------------------------ namespaces and cleanup
NS_C=itc-tunnels-cli   # 10.83.0.10
NS_S=itc-tunnels-srv   # 10.83.0.20
ALL_NS="$NS_C $NS_S"
C4=10.83.0.10 S4=10.83.0.20
ns_begin itc-tunnels

mkns $NS_C noipv6; mkns $NS_S noipv6
veth $NS_C eth0 02:00:0a:53:00:0a $NS_S eth0 02:00:0a:53:00:14
ip -n $NS_C addr add $C4/24 dev eth0; ip -n $NS_S addr add $S4/24 dev eth0

TOOLS='{}'
tool() { TOOLS=$($PY -c 'import json,sys; d=json.loads(sys.argv[1]); d[sys.argv[2]]=sys.argv[3]; print(json.dumps(d))' "$TOOLS" "$1" "$2"); }

# ================================================================== SMB (samba smbd + smbclient)
smb_case() {  # file encrypt(required|off) description
  local f=$1 enc=$2 desc=$3 d=$WORK/smb-$2
  mkdir -p "$d"/{private,state,cache,lock,share,pid}
  echo hello > "$d/share/hello.txt"
  cat > "$d/smb.conf" <<EOF
[global]
  workgroup = ITC
  netbios name = ITCSRV
  server role = standalone server
  security = user
  passdb backend = tdbsam:$d/private/passdb.tdb
  private dir = $d/private
  state directory = $d/state
  cache directory = $d/cache
  lock directory = $d/lock
  pid directory = $d/pid
  ncalrpc dir = $d/lock/ncalrpc
  username map = $d/users.map
  smb ports = 445
  interfaces = $S4/24
  bind interfaces only = yes
  disable netbios = yes
  load printers = no
  printing = bsd
  printcap name = /dev/null
  log file = $d/log.%m
  server min protocol = SMB2_02
  smb encrypt = $enc
[share]
  path = $d/share
  read only = no
  force user = root
EOF
  echo "root = alice" > "$d/users.map"
  printf 's3cret-smb\ns3cret-smb\n' | inns $NS_S pdbedit -s "$d/smb.conf" -a -u root -t >> "$LOG" 2>&1
  ns_cap_start $NS_S eth0 "$f" "tcp port 445"
  ns_srv $NS_S setsid smbd --foreground --no-process-group -s "$d/smb.conf" --debug-stdout
  ns_wait_port $NS_S 445
  ns_cli $NS_C smbclient //$S4/share -U 'ITC\alice%s3cret-smb' -m SMB3 -c 'get hello.txt /dev/null; ls'
  srv_stop; cap_stop "$f"
  expect "$f" "$desc"
}
if part smb; then
  command -v smbd >/dev/null || die "missing smbd (try --install)"
  tool samba "$(smbd --version | awk '{print $2}')"
  smb_case smb3_encrypted.pcap required '{"description": "SMB 3.1.1 with smb encrypt = required: samba smbd <- smbclient -m SMB3, NTLMv2 login as ITC\\alice, get hello.txt and ls in transform headers",
    "tool": "samba smbd + smbclient", "transport": "tcp", "client": "10.83.0.10", "server": "10.83.0.20", "server_port": 445,
    "app_protocol": "smb", "smb_dialect": "3.1.1", "encrypted": true, "protection": "smb3", "session_encrypt": true,
    "username": "ITC\\alice", "auth": "ntlm", "password": "s3cret-smb"}'
  smb_case smb3_plain.pcap off '{"description": "SMB 3.1.1 with smb encrypt = off: samba smbd <- smbclient -m SMB3, NTLMv2 login as ITC\\alice, get hello.txt and ls in the clear",
    "tool": "samba smbd + smbclient", "transport": "tcp", "client": "10.83.0.10", "server": "10.83.0.20", "server_port": 445,
    "app_protocol": "smb", "smb_dialect": "3.1.1", "encrypted": false, "protection": "none", "session_encrypt": false,
    "username": "ITC\\alice", "auth": "ntlm", "password": "s3cret-smb"}'
fi

# ================================================================== WireGuard (wireguard-go + wg)
if part wg; then
  command -v wireguard-go >/dev/null && command -v wg >/dev/null || die "missing wireguard-go/wg (try --install)"
  tool wireguard-tools "$(wg --version | awk '{print $2}')"
  tool wireguard-go "$(wireguard-go --version 2>&1 | awk '{print $2}' | head -1)"
  F=wireguard.pcap
  KC=$(wg genkey); KS=$(wg genkey)
  export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1
  ns_srv $NS_C wireguard-go -f wgc   # distinct names: the UAPI socket /var/run/wireguard/NAME.sock is not per namespace
  ns_srv $NS_S wireguard-go -f wgs
  for _ in $(seq 50); do ip -n $NS_S link show wgs >/dev/null 2>&1 && ip -n $NS_C link show wgc >/dev/null 2>&1 && break; sleep 0.1; done
  printf '%s' "$KC" > "$WORK/wg-c.key"; printf '%s' "$KS" > "$WORK/wg-s.key"
  inns $NS_S wg set wgs listen-port 51820 private-key "$WORK/wg-s.key" peer "$(printf '%s' "$KC" | wg pubkey)" \
    allowed-ips 10.83.100.10/32
  inns $NS_C wg set wgc listen-port 40000 private-key "$WORK/wg-c.key" peer "$(printf '%s' "$KS" | wg pubkey)" \
    allowed-ips 10.83.100.20/32 endpoint $S4:51820
  ip -n $NS_S addr add 10.83.100.20/24 dev wgs; ip -n $NS_S link set wgs up
  ip -n $NS_C addr add 10.83.100.10/24 dev wgc; ip -n $NS_C link set wgc up
  ns_cap_start $NS_S eth0 $F "udp port 51820"
  for i in 1 2 3; do  # UDP to a closed port inside the tunnel: the ICMP answer comes back through it too
    ns_cli $NS_C bash -c "echo hello-$i > /dev/udp/10.83.100.20/9"; sleep 0.3
  done
  cap_stop $F
  kill_ns $NS_C; kill_ns $NS_S; mkns $NS_C; mkns $NS_S  # fresh namespaces for the next part
  veth $NS_C eth0 02:00:0a:53:00:0a $NS_S eth0 02:00:0a:53:00:14
  ip -n $NS_C addr add $C4/24 dev eth0; ip -n $NS_S addr add $S4/24 dev eth0
  expect $F '{"description": "WireGuard (wireguard-go on /dev/net/tun, configured with wg): handshake initiation and response, then 3 UDP datagrams and the ICMP port-unreachable answers in transport data messages",
    "tool": "wireguard-go + wg", "transport": "udp", "client": "10.83.0.10", "client_port": 40000, "server": "10.83.0.20",
    "server_port": 51820, "app_protocol": "wireguard", "encrypted": true, "protection": "wireguard",
    "message_types": [1, 2, 4]}'
fi

# ================================================================== OpenVPN (p2p TLS mode)
ovpn_case() {  # file proto(udp|tcp) wrap(none|tls-auth|tls-crypt) description
  local f=$1 proto=$2 wrap=$3 desc=$4 P=$WORK/ovpn sproto=udp cproto=udp wrapopt=() _
  [ "$proto" = tcp ] && sproto=tcp-server cproto=tcp-client
  case $wrap in
    tls-auth) wrapopt=(--tls-auth "$P/ta.key");;
    tls-crypt) wrapopt=(--tls-crypt "$P/ta.key");;
  esac
  local common=(--dev tun --verb 3 --dh none --ca "$P/ca.crt" --cipher AES-256-GCM --data-ciphers AES-256-GCM
                --ping 1 --connect-retry 1)
  ns_cap_start $NS_S eth0 "$f" "$proto port 1194"
  ns_srv $NS_S openvpn "${common[@]}" --proto $sproto --lport 1194 --tls-server --cert "$P/srv.crt" --key "$P/srv.key" \
    --ifconfig 10.83.200.1 10.83.200.2 "${wrapopt[@]}" $([ "$wrap" = tls-auth ] && echo 0)
  local spid=$SRV
  sleep 0.5
  ns_srv $NS_C openvpn "${common[@]}" --proto $cproto --remote $S4 1194 --nobind --tls-client --cert "$P/cli.crt" \
    --key "$P/cli.key" --remote-cert-tls server --ifconfig 10.83.200.2 10.83.200.1 "${wrapopt[@]}" \
    $([ "$wrap" = tls-auth ] && echo 1)
  local cpid=$SRV
  for _ in $(seq 100); do ip -n $NS_C addr show 2>/dev/null | grep -q 10.83.200.2 && \
    grep -c "Initialization Sequence Completed" "$LOG" | grep -q "$(( OVPN_DONE + 2 ))" && break; sleep 0.1; done
  OVPN_DONE=$(grep -c "Initialization Sequence Completed" "$LOG")
  for i in 1 2 3; do ns_cli $NS_C bash -c "echo hello-$i > /dev/udp/10.83.200.1/9"; sleep 0.2; done
  srv_stop $cpid; srv_stop $spid; cap_stop "$f"
  expect "$f" "$desc"
}
if part ovpn; then
  command -v openvpn >/dev/null || die "missing openvpn (try --install)"
  tool openvpn "$(openvpn --version | head -1 | awk '{print $2}')"
  P=$WORK/ovpn; mkdir -p "$P"; OVPN_DONE=0
  (
    cd "$P" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=itc-ovpn-ca \
      -keyout ca.key -out ca.crt
    for n in srv cli; do
      ku=clientAuth; [ $n = srv ] && ku=serverAuth
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=itc-ovpn-$n -keyout $n.key -out $n.csr
      printf 'extendedKeyUsage=%s\nkeyUsage=digitalSignature,keyAgreement\n' $ku > $n.ext
      openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile $n.ext -out $n.crt
    done
    openvpn --genkey secret ta.key
  ) >> "$LOG" 2>&1 || die "OpenVPN PKI failed (see $LOG)"
  ovpn_case openvpn_udp.pcap udp none '{"description": "OpenVPN 2.6 p2p TLS mode over UDP, no control channel wrapping: hard reset client/server V2, TLS in P_CONTROL, then 3 UDP datagrams and pings in P_DATA_V2 (AES-256-GCM)",
    "tool": "openvpn", "transport": "udp", "client": "10.83.0.10", "server": "10.83.0.20", "server_port": 1194,
    "app_protocol": "openvpn", "encrypted": true, "protection": "openvpn", "control_wrap": "none"}'
  ovpn_case openvpn_udp_tlsauth.pcap udp tls-auth '{"description": "OpenVPN 2.6 p2p TLS mode over UDP with --tls-auth (HMAC on every control packet)",
    "tool": "openvpn", "transport": "udp", "client": "10.83.0.10", "server": "10.83.0.20", "server_port": 1194,
    "app_protocol": "openvpn", "encrypted": true, "protection": "openvpn", "control_wrap": "tls-auth"}'
  ovpn_case openvpn_tcp_tlscrypt.pcap tcp tls-crypt '{"description": "OpenVPN 2.6 p2p TLS mode over TCP (2-byte length prefix) with --tls-crypt (control channel encrypted)",
    "tool": "openvpn", "transport": "tcp", "client": "10.83.0.10", "server": "10.83.0.20", "server_port": 1194,
    "app_protocol": "openvpn", "encrypted": true, "protection": "openvpn", "control_wrap": "tls-crypt"}'
fi

# ================================================================== manifest
"$PY" - "$EXPECT" "$OUT/manifest.tunnels.json" "$TOOLS" <<'EOF'
import datetime, json, sys
expect, out, tools = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
try:
    old = json.load(open(out))
except (OSError, ValueError):
    old = {"captures": {}}
caps = dict(old.get("captures", {}))
for line in open(expect):
    name, facts = line.rstrip("\n").split("\t", 1)
    caps[name] = json.loads(facts)
doc = {"schema": 1, "generated_by": "captures/make_tunnels_captures.sh",
       "recorded_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
       "tools": {**old.get("tools", {}), **tools}, "captures": dict(sorted(caps.items()))}
json.dump(doc, open(out, "w"), indent=2)
open(out, "a").write("\n")
EOF
echo "took $(( $(date +%s) - T0 )) s"
