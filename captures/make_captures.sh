#!/usr/bin/env bash
# Regenerate the sample captures in captures/ (see captures/README.md).
#
# Records real software (OpenSSL, curl, GnuTLS, aioquic, aiosmtpd, pyftpdlib, OpenSSH, the Linux
# vxlan driver) talking inside network namespaces that this script creates and deletes itself,
# with tcpdump/dumpcap, and writes small pcaps plus manifest.json (the facts a test can expect).
# Nothing leaves the machine: all addresses live only inside the namespaces.
#
#   sudo captures/make_captures.sh            # record everything into captures/
#   sudo captures/make_captures.sh --install  # apt/pip-install the tools first
#   OUT=/tmp/x captures/make_captures.sh      # write somewhere else
#   KEEP_WORK=1 ...                           # keep the temp dir (PKI, logs) for debugging
#
# Needs root, iproute2, tcpdump, tshark/dumpcap/capinfos, ethtool, openssl, curl, gnutls-bin,
# openssh-server/-client, python3 with aioquic, aiosmtpd, pyftpdlib and cryptography.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
TOOLS=$HERE/tools
PY=${PYTHON:-python3}
T0=$(date +%s)

if [ "${1:-}" = "--install" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump tshark ethtool iproute2 openssl curl \
    gnutls-bin openssh-server openssh-client python3 >/dev/null
  $PY -m pip install -q aioquic aiosmtpd pyftpdlib pyOpenSSL cryptography
fi

SCRIPT=make_captures
# shellcheck source=tools/ns_lib.sh
. "$TOOLS/ns_lib.sh"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tcpdump)"
for c in ip tcpdump tshark dumpcap capinfos ethtool openssl curl gnutls-serv gnutls-cli ssh ssh-keygen /usr/sbin/sshd gzip ss timeout; do
  command -v "$c" >/dev/null || die "missing $c (try --install)"
done
$PY -c "import aioquic, aiosmtpd, pyftpdlib, OpenSSL, cryptography" 2>/dev/null || die "missing python modules (try --install)"


# ------------------------------------------------------------------ namespaces and cleanup
NS_C=itc-cli   # client          10.77.0.10  fd77::10
NS_S=itc-srv   # server          10.77.0.20  fd77::20
NS_M=itc-col   # mirror target   10.77.2.2   (underlay from itc-srv 10.77.2.1)
NS_A=itc-vta   # tunnel end A    10.77.1.1   inner .10
NS_B=itc-vtb   # tunnel end B    10.77.1.2   inner .20
ALL_NS="$NS_C $NS_S $NS_M $NS_A $NS_B"
C4=10.77.0.10 S4=10.77.0.20 C6=fd77::10 S6=fd77::20
CLI_TIMEOUT=15  # (the bundled captures were recorded with these)
SRV_GRACE=1     # an `s_server -naccept 1` ends by itself after its one connection
ns_begin itc-captures
PKI=$WORK/pki

# client <-> server, Ethernet on a veth pair, IPv4 + IPv6 (no DAD delay)
mkns $NS_C; mkns $NS_S
veth $NS_C eth0 02:00:0a:4d:00:0a $NS_S eth0 02:00:0a:4d:00:14
ip -n $NS_C addr add $C4/24 dev eth0; ip -n $NS_S addr add $S4/24 dev eth0
ip -n $NS_C addr add $C6/64 dev eth0 nodad; ip -n $NS_S addr add $S6/64 dev eth0 nodad

REQ=$'GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: openssl-s_client\r\nConnection: close\r\n\r\n'
SSLD=(openssl s_server -quiet -naccept 1 -www)
chain() { echo "-cert $PKI/$1.crt -key $PKI/$1.key -cert_chain $PKI/int.crt"; }
resolve() { echo "--resolve $1:$2:$3"; }
CURL=(curl -sS -k -o /dev/null --max-time 10)
LEGACY="DEFAULT:@SECLEVEL=0"

# ------------------------------------------------------------------ PKI
"$TOOLS/make_pki.sh" "$PKI" >> "$LOG" 2>&1 || die "PKI generation failed (see $LOG)"

# ================================================================== 1. TLS by version
F=tls13_openssl.pcap
ns_cap_start $NS_S eth0 $F "tcp port 443"
ns_srv $NS_S "${SSLD[@]}" -accept 443 $(chain good) -tls1_3 -alpn http/1.1
ns_wait_port $NS_S 443
printf '%s' "$REQ" | ns_cli $NS_C openssl s_client -quiet -ign_eof -connect $S4:443 -servername www.example.com \
  -tls1_3 -alpn h2,http/1.1 -keylogfile "$OUT/tls13_openssl.keylog"
srv_stop; cap_stop $F
expect $F '{"description": "TLS 1.3, openssl s_client -> openssl s_server, RSA chain, ALPN h2,http/1.1 offered",
  "tool": "openssl s_server/s_client", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20",
  "server_port": 443, "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384",
  "server_name": "www.example.com", "alpn_offered": ["h2", "http/1.1"], "alpn": "http/1.1",
  "handshake_complete": true, "cert": "good", "cert_chain": ["good", "int"], "cert_visible": false,
  "keylog": "tls13_openssl.keylog"}'

F=tls12_ecdhe_openssl.pcap
ns_cap_start $NS_S eth0 $F "tcp port 443"
ns_srv $NS_S "${SSLD[@]}" -accept 443 $(chain good) -alpn http/1.1
ns_wait_port $NS_S 443
ns_cli $NS_C "${CURL[@]}" --tls-max 1.2 $(resolve www.example.com 443 $S4) https://www.example.com/
srv_stop; cap_stop $F
expect $F '{"description": "TLS 1.2 ECDHE-RSA, curl --tls-max 1.2 -> openssl s_server (which also speaks 1.3)",
  "tool": "curl + openssl s_server", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20",
  "server_port": 443, "tls_version": "TLS 1.2", "tls_cipher": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
  "server_name": "www.example.com", "alpn_offered": ["h2", "http/1.1"], "alpn": "http/1.1",
  "handshake_complete": true, "cert": "good", "cert_chain": ["good", "int"], "cert_visible": true}'

for V in 1_1 1; do
  case $V in 1_1) F=tls11_openssl.pcap; VN="TLS 1.1";; *) F=tls10_openssl.pcap; VN="TLS 1.0";; esac
  ns_cap_start $NS_S eth0 $F "tcp port 443"
  ns_srv $NS_S "${SSLD[@]}" -accept 443 $(chain good) -tls$V -cipher "$LEGACY"
  ns_wait_port $NS_S 443
  printf '%s' "$REQ" | ns_cli $NS_C openssl s_client -quiet -ign_eof -connect $S4:443 -servername www.example.com \
    -tls$V -cipher "$LEGACY"
  srv_stop; cap_stop $F
  expect $F '{"description": "'"$VN"', openssl s_client -> openssl s_server, both -cipher DEFAULT:@SECLEVEL=0",
    "tool": "openssl s_server/s_client", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20",
    "server_port": 443, "tls_version": "'"$VN"'", "tls_cipher": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "server_name": "www.example.com", "handshake_complete": true, "cert": "good", "cert_chain": ["good", "int"],
    "cert_visible": true}'
done

# ================================================================== 2. certificates (TLS 1.2, curl)
cert_case() {  # file certname sni description [extra expect json]
  local f=$1 cert=$2 sni=$3 desc=$4 extra=${5:-} cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 chainjson
  [ "$cert" = ecdsa ] && cipher=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  if [ "$cert" = selfsigned ]; then chainjson='["selfsigned"]'; else chainjson='["'$cert'", "int"]'; fi
  ns_cap_start $NS_S eth0 "$f" "tcp port 443"
  if [ "$cert" = selfsigned ]; then
    ns_srv $NS_S "${SSLD[@]}" -accept 443 -cert "$PKI/selfsigned.crt" -key "$PKI/selfsigned.key" -cipher "$LEGACY"
  else
    ns_srv $NS_S "${SSLD[@]}" -accept 443 $(chain "$cert") -cipher "$LEGACY"
  fi
  ns_wait_port $NS_S 443
  ns_cli $NS_C "${CURL[@]}" --tls-max 1.2 --ciphers "$LEGACY" $(resolve "$sni" 443 $S4) "https://$sni/"
  srv_stop; cap_stop "$f"
  expect "$f" '{"description": "'"$desc"'", "tool": "curl -k --tls-max 1.2 + openssl s_server",
    "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20", "server_port": 443,
    "tls_version": "TLS 1.2", "tls_cipher": "'$cipher'", "server_name": "'"$sni"'",
    "alpn_offered": ["h2", "http/1.1"], "handshake_complete": true, "cert": "'"$cert"'",
    "cert_chain": '"$chainjson"', "cert_visible": true'"$extra"'}'
}
cert_case cert_good_chain_tls12.pcap good www.example.com "good chain: RSA-2048 leaf + issuing CA, valid 397 days from the day before recording" ', "sni_matches_cert": true'
cert_case cert_ecdsa_p256_tls12.pcap ecdsa api.example.com "ECDSA P-256 leaf signed by the RSA issuing CA" ', "sni_matches_cert": true'
cert_case cert_expired_tls12.pcap expired expired.example.com "expired leaf (2020-01-01 .. 2021-01-01)" ', "sni_matches_cert": true'
cert_case cert_not_yet_valid_tls12.pcap future future.example.com "not-yet-valid leaf (2099-01-01 .. 2100-01-01)" ', "sni_matches_cert": true'
cert_case cert_self_signed_tls12.pcap selfsigned selfsigned.example.com "self-signed end-entity certificate, sent alone" ', "sni_matches_cert": true'
cert_case cert_rsa1024_tls12.pcap rsa1024 weak.example.com "1024-bit RSA leaf (SHA-256 signed by the issuing CA)" ', "sni_matches_cert": true'
cert_case cert_sha1_tls12.pcap sha1 sha1.example.com "leaf signed with sha1WithRSAEncryption" ', "sni_matches_cert": true'
cert_case cert_sni_mismatch_tls12.pcap other www.example.com "SNI www.example.com, server presents a certificate for other.example.net only" ', "sni_matches_cert": false'

F=cert_good_chain_tls13.pcap
ns_cap_start $NS_S eth0 $F "tcp port 443"
ns_srv $NS_S "${SSLD[@]}" -accept 443 $(chain good) -alpn http/1.1
ns_wait_port $NS_S 443
SSLKEYLOGFILE="$OUT/cert_good_chain_tls13.keylog" ns_cli $NS_C "${CURL[@]}" --tlsv1.3 $(resolve www.example.com 443 $S4) https://www.example.com/
srv_stop; cap_stop $F
expect $F '{"description": "good chain over TLS 1.3 (certificate encrypted; keylog shipped to verify it)",
  "tool": "curl + openssl s_server", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20",
  "server_port": 443, "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384",
  "server_name": "www.example.com", "alpn_offered": ["h2", "http/1.1"], "alpn": "http/1.1",
  "handshake_complete": true, "cert": "good", "cert_chain": ["good", "int"], "cert_visible": false,
  "keylog": "cert_good_chain_tls13.keylog", "sni_matches_cert": true}'

# ================================================================== 3. HRR, resumption
F=tls13_hrr.pcap
ns_cap_start $NS_S eth0 $F "tcp port 443"
ns_srv $NS_S "${SSLD[@]}" -accept 443 $(chain good) -tls1_3 -groups P-384
ns_wait_port $NS_S 443
printf '%s' "$REQ" | ns_cli $NS_C openssl s_client -quiet -ign_eof -connect $S4:443 -servername www.example.com -tls1_3 -groups X25519:P-384
srv_stop; cap_stop $F
expect $F '{"description": "TLS 1.3 HelloRetryRequest: client key share X25519, server accepts only P-384",
  "tool": "openssl s_server -groups P-384 / s_client -groups X25519:P-384", "transport": "tcp",
  "client": "10.77.0.10", "server": "10.77.0.20", "server_port": 443, "tls_version": "TLS 1.3",
  "tls_cipher": "TLS_AES_256_GCM_SHA384", "server_name": "www.example.com", "hello_retry_request": true,
  "client_hellos": 2, "key_share_groups_offered": ["x25519"], "key_share_group": "secp384r1",
  "handshake_complete": true, "cert": "good", "cert_visible": false}'

F=tls13_resumption.pcap
ns_cap_start $NS_S eth0 $F "tcp port 443"
ns_srv $NS_S openssl s_server -quiet -naccept 2 -www -accept 443 $(chain good) -tls1_3
ns_wait_port $NS_S 443
printf '%s' "$REQ" | ns_cli $NS_C openssl s_client -quiet -ign_eof -connect $S4:443 -servername www.example.com -tls1_3 -sess_out "$WORK/sess13.pem"
printf '%s' "$REQ" | ns_cli $NS_C openssl s_client -quiet -ign_eof -connect $S4:443 -servername www.example.com -tls1_3 -sess_in "$WORK/sess13.pem"
srv_stop; cap_stop $F
expect $F '{"description": "TLS 1.3 full handshake, then a PSK resumption with the ticket from the first",
  "tool": "openssl s_client -sess_out / -sess_in", "transport": "tcp", "client": "10.77.0.10",
  "server": "10.77.0.20", "server_port": 443, "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384",
  "server_name": "www.example.com", "tls_connections": 2, "resumption": "psk", "resumed_connections": 1,
  "handshake_complete": true, "cert": "good", "cert_visible": false}'

F=tls12_resumption.pcap
ns_cap_start $NS_S eth0 $F "tcp port 443"
ns_srv $NS_S openssl s_server -quiet -naccept 2 -www -accept 443 $(chain good) -tls1_2 -no_ticket
ns_wait_port $NS_S 443
printf '%s' "$REQ" | ns_cli $NS_C openssl s_client -quiet -ign_eof -connect $S4:443 -servername www.example.com -tls1_2 -sess_out "$WORK/sess12.pem"
printf '%s' "$REQ" | ns_cli $NS_C openssl s_client -quiet -ign_eof -connect $S4:443 -servername www.example.com -tls1_2 -sess_in "$WORK/sess12.pem"
srv_stop; cap_stop $F
expect $F '{"description": "TLS 1.2 full handshake, then session-ID resumption (no tickets)",
  "tool": "openssl s_server -no_ticket, s_client -sess_out / -sess_in", "transport": "tcp",
  "client": "10.77.0.10", "server": "10.77.0.20", "server_port": 443, "tls_version": "TLS 1.2",
  "tls_cipher": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "server_name": "www.example.com",
  "tls_connections": 2, "resumption": "session_id", "resumed_connections": 1, "handshake_complete": true,
  "cert": "good", "cert_chain": ["good", "int"], "cert_visible": true}'

# ================================================================== 4. legacy ciphers (GnuTLS)
for C in ARCFOUR-128 3DES-CBC; do
  case $C in
    ARCFOUR-128) F=tls12_rc4_gnutls.pcap; CN=TLS_RSA_WITH_RC4_128_SHA;;
    *)           F=tls12_3des_gnutls.pcap; CN=TLS_RSA_WITH_3DES_EDE_CBC_SHA;;
  esac
  PRIO="NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+$C:-KX-ALL:+RSA:%COMPAT:%VERIFY_ALLOW_BROKEN"
  ns_cap_start $NS_S eth0 $F "tcp port 443"
  ns_srv $NS_S gnutls-serv --http -a -p 443 --x509certfile "$PKI/rsa1024.chain.pem" --x509keyfile "$PKI/rsa1024.key" --priority "$PRIO"
  ns_wait_port $NS_S 443
  printf '%s' "$REQ" | ns_cli $NS_C timeout 4 gnutls-cli --insecure -p 443 --priority "$PRIO" --sni-hostname weak.example.com $S4
  srv_stop; cap_stop $F
  expect $F '{"description": "TLS 1.2 static-RSA key exchange with '"$C"', 1024-bit RSA leaf + issuing CA",
    "tool": "gnutls-serv/gnutls-cli", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20",
    "server_port": 443, "tls_version": "TLS 1.2", "tls_cipher": "'$CN'", "server_name": "weak.example.com",
    "handshake_complete": true, "cert": "rsa1024", "cert_chain": ["rsa1024", "int"], "cert_visible": true}'
done

# ================================================================== 5. failures
F=tls_version_alert.pcap
ns_cap_start $NS_S eth0 $F "tcp port 443"
ns_srv $NS_S "${SSLD[@]}" -accept 443 $(chain good) -tls1_2
ns_wait_port $NS_S 443
printf '%s' "$REQ" | ns_cli $NS_C openssl s_client -quiet -connect $S4:443 -servername www.example.com -tls1_3
srv_stop; cap_stop $F
expect $F '{"description": "client offers only TLS 1.3, server max TLS 1.2: fatal protocol_version alert, no ServerHello",
  "tool": "openssl s_client -tls1_3 -> s_server -tls1_2", "transport": "tcp", "client": "10.77.0.10",
  "server": "10.77.0.20", "server_port": 443, "server_name": "www.example.com",
  "client_supported_versions": ["TLS 1.3"], "tls_alert": "protocol_version", "tls_alert_from": "server",
  "handshake_complete": false}'

F=tls_client_to_http_port.pcap
W=$WORK/www; mkdir -p "$W"
ns_cap_start $NS_S eth0 $F "tcp port 80"
ns_srv $NS_S "$PY" -m http.server 80 --bind $S4 --directory "$W"
ns_wait_port $NS_S 80
ns_cli $NS_C openssl s_client -ign_eof -connect $S4:80 -servername www.example.com < /dev/null
srv_stop; cap_stop $F
expect $F '{"description": "TLS client (openssl s_client) against a plaintext HTTP port: python http.server answers the ClientHello with an HTML 400 page (no status line: a garbage request line makes it fall back to HTTP/0.9)",
  "tool": "openssl s_client -> python http.server", "transport": "tcp", "client": "10.77.0.10",
  "server": "10.77.0.20", "server_port": 80, "server_name": "www.example.com", "handshake_complete": false,
  "server_plaintext_prefix": "<!DOCTYPE HTML>", "tshark_decode_as": ["tcp.port==80,tls"]}'

F=tcp_rst_closed_port.pcap
ns_cap_start $NS_S eth0 $F "tcp port 443"
ns_cli $NS_C "${CURL[@]}" $(resolve www.example.com 443 $S4) https://www.example.com/
cap_stop $F
expect $F '{"description": "curl https to a closed port: SYN answered by RST, no TLS at all",
  "tool": "curl", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20", "server_port": 443,
  "tcp_rst_from_server": true, "handshake_complete": false}'

# ================================================================== 6. other ports and protocols
F=tls13_port8444.pcap
ns_cap_start $NS_S eth0 $F "tcp port 8444"
ns_srv $NS_S "${SSLD[@]}" -accept 8444 $(chain good) -alpn http/1.1
ns_wait_port $NS_S 8444
ns_cli $NS_C "${CURL[@]}" $(resolve www.example.com 8444 $S4) https://www.example.com:8444/
srv_stop; cap_stop $F
expect $F '{"description": "TLS 1.3 on the non-standard port 8444 (curl -> openssl s_server)",
  "tool": "curl + openssl s_server", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20",
  "server_port": 8444, "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384",
  "server_name": "www.example.com", "alpn_offered": ["h2", "http/1.1"], "handshake_complete": true,
  "cert": "good", "cert_visible": false, "tshark_decode_as": ["tcp.port==8444,tls"]}'

F=tls13_ipv6.pcap
ns_cap_start $NS_S eth0 $F "ip6 and tcp port 443"
ns_srv $NS_S "${SSLD[@]}" -6 -accept "[$S6]:443" $(chain good) -alpn http/1.1
ns_wait_port $NS_S 443
ns_cli $NS_C "${CURL[@]}" $(resolve www.example.com 443 "[$S6]") https://www.example.com/
srv_stop; cap_stop $F
expect $F '{"description": "TLS 1.3 over IPv6 (curl -> openssl s_server)", "tool": "curl + openssl s_server",
  "transport": "tcp", "ip_version": 6, "client": "fd77::10", "server": "fd77::20", "server_port": 443,
  "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384", "server_name": "www.example.com",
  "alpn_offered": ["h2", "http/1.1"], "handshake_complete": true, "cert": "good", "cert_visible": false}'

# a small, fixed web root
for i in $(seq 1 40); do printf 'line %02d of the intransit sample page, served in the clear\n' "$i"; done > "$W/index.html"
F=http_plain.pcap
ns_srv $NS_S "$PY" -m http.server 80 --bind $S4 --directory "$W"; HTTP_PID=$SRV
ns_wait_port $NS_S 80
ns_cap_start $NS_S eth0 $F "tcp port 80"
ns_cli $NS_C curl -sS -o /dev/null --max-time 10 $(resolve www.example.com 80 $S4) http://www.example.com/index.html
cap_stop $F; srv_stop $HTTP_PID
expect $F '{"description": "plaintext HTTP/1.1 GET (curl -> python http.server)", "tool": "curl + python -m http.server",
  "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20", "server_port": 80,
  "http_requests": [{"method": "GET", "host": "www.example.com", "uri": "/index.html"}], "http_status": [200]}'
gzip -9 -n -c "$OUT/$F" > "$OUT/$F.gz"
expect $F.gz '{"description": "gzip -9 -n copy of http_plain.pcap", "tool": "gzip", "format": "pcap.gz",
  "same_as": "http_plain.pcap"}'

F=http_basic_auth.pcap
ns_srv $NS_S "$PY" "$TOOLS/servers.py" http-basic $S4 80; HTTP_PID=$SRV
ns_wait_port $NS_S 80
ns_cap_start $NS_S eth0 $F "tcp port 80"
ns_cli $NS_C curl -sS -o /dev/null --max-time 10 -u alice:secret $(resolve intranet.example.com 80 $S4) http://intranet.example.com/private/report
cap_stop $F; srv_stop $HTTP_PID
expect $F '{"description": "HTTP Basic credentials alice:secret in the clear (curl -u -> small python server)",
  "tool": "curl -u + tools/servers.py http-basic", "transport": "tcp", "client": "10.77.0.10",
  "server": "10.77.0.20", "server_port": 80,
  "http_requests": [{"method": "GET", "host": "intranet.example.com", "uri": "/private/report"}],
  "http_status": [200], "http_basic_auth": {"user": "alice", "password": "secret"}}'

printf 'From: alice@example.org\r\nTo: bob@example.com\r\nSubject: quarterly report\r\n\r\nNumbers attached.\r\n' > "$WORK/mail.txt"
F=smtp_starttls.pcap
ns_srv $NS_S "$PY" "$TOOLS/servers.py" smtp $S4 25 --cert "$PKI/mail.chain.pem" --key "$PKI/mail.key"; SMTP_PID=$SRV
ns_wait_port $NS_S 25
ns_cap_start $NS_S eth0 $F "tcp port 25"
ns_cli $NS_C curl -sS --max-time 10 --ssl-reqd -k $(resolve mail.example.com 25 $S4) smtp://mail.example.com:25/client.example.org \
  --mail-from alice@example.org --mail-rcpt bob@example.com -T "$WORK/mail.txt"
cap_stop $F; srv_stop $SMTP_PID
expect $F '{"description": "SMTP with STARTTLS (curl --ssl-reqd -> aiosmtpd, STARTTLS required), then TLS 1.3",
  "tool": "curl + aiosmtpd", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20", "server_port": 25,
  "smtp_commands": ["EHLO", "STARTTLS"], "starttls": true, "tls_version": "TLS 1.3",
  "tls_cipher": "TLS_AES_256_GCM_SHA384", "server_name": "mail.example.com", "handshake_complete": true,
  "cert": "mail", "cert_visible": false}'

F=smtp_plain_auth.pcap
ns_srv $NS_S "$PY" "$TOOLS/servers.py" smtp $S4 25 --auth; SMTP_PID=$SRV
ns_wait_port $NS_S 25
ns_cap_start $NS_S eth0 $F "tcp port 25"
ns_cli $NS_C curl -sS --max-time 10 -u alice:secret $(resolve mail.example.com 25 $S4) smtp://mail.example.com:25/client.example.org \
  --mail-from alice@example.org --mail-rcpt bob@example.com -T "$WORK/mail.txt"
cap_stop $F; srv_stop $SMTP_PID
expect $F '{"description": "SMTP without TLS, AUTH with alice:secret in the clear, then a message (curl -> aiosmtpd)",
  "tool": "curl -u + aiosmtpd", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20",
  "server_port": 25, "smtp_commands": ["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"], "starttls": false,
  "smtp_auth": {"user": "alice", "password": "secret"}}'

F=ftp_login.pcap
ns_srv $NS_S "$PY" "$TOOLS/servers.py" ftp $S4 21 --root "$WORK/ftproot"; FTP_PID=$SRV
ns_wait_port $NS_S 21
ns_cap_start $NS_S eth0 $F "tcp and host $S4"
ns_cli $NS_C curl -sS -o /dev/null --max-time 10 -u alice:secret $(resolve ftp.example.com 21 $S4) ftp://ftp.example.com/readme.txt
cap_stop $F; srv_stop $FTP_PID
expect $F '{"description": "FTP login alice:secret in the clear and a passive-mode RETR (curl -> pyftpdlib)",
  "tool": "curl + pyftpdlib", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20", "server_port": 21,
  "ftp_user": "alice", "ftp_password": "secret", "ftp_commands": ["USER", "PASS", "EPSV", "RETR", "QUIT"],
  "ftp_data_ports": [30000, 30009]}'

F=ftps_explicit.pcap
ns_srv $NS_S "$PY" "$TOOLS/servers.py" ftp $S4 21 --root "$WORK/ftproot" --cert "$PKI/ftp.chain.pem" --key "$PKI/ftp.key"; FTP_PID=$SRV
ns_wait_port $NS_S 21
ns_cap_start $NS_S eth0 $F "tcp and host $S4"
ns_cli $NS_C curl -sS -o /dev/null --max-time 10 --ssl-reqd -k -u alice:secret $(resolve ftp.example.com 21 $S4) ftp://ftp.example.com/readme.txt
cap_stop $F; srv_stop $FTP_PID
expect $F '{"description": "explicit FTPS: AUTH SSL (curl default) on the control channel, then TLS on control and data (PROT P) (curl --ssl-reqd -> pyftpdlib TLS_FTPHandler)",
  "tool": "curl --ssl-reqd + pyftpdlib", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20",
  "server_port": 21, "ftp_commands": ["AUTH"], "ftp_auth": "SSL", "tls_version": "TLS 1.3",
  "tls_cipher": "TLS_AES_256_GCM_SHA384", "server_name": "ftp.example.com", "handshake_complete": true,
  "cert": "ftp", "cert_visible": false, "tls_connections": 2}'

# ================================================================== 7. DTLS, QUIC, SSH
F=dtls12_openssl.pcap
ns_cap_start $NS_S eth0 $F "udp port 4433"
ns_srv $NS_S openssl s_server -quiet -naccept 1 -dtls1_2 -accept 4433 $(chain good)
ns_wait_port $NS_S 4433 udp
printf 'hello over DTLS\n' | ns_cli $NS_C openssl s_client -quiet -dtls1_2 -connect $S4:4433 -servername www.example.com
srv_stop; cap_stop $F
expect $F '{"description": "DTLS 1.2 over UDP 4433 (openssl s_client -dtls1_2 -> s_server -dtls1_2); cookie exchange (HelloVerifyRequest); the server flight is split into many small handshake fragments",
  "tool": "openssl s_server/s_client -dtls1_2", "transport": "udp", "client": "10.77.0.10",
  "server": "10.77.0.20", "server_port": 4433, "dtls_version": "DTLS 1.2",
  "hello_verify_request": true, "handshake_fragmented": true,
  "tls_cipher": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "server_name": "www.example.com",
  "handshake_complete": true, "cert": "good", "cert_chain": ["good", "int"], "cert_visible": true}'

F=quic_aioquic.pcap
ns_srv $NS_S "$PY" "$TOOLS/quic_pair.py" server --host $S4 --port 443 --cert "$PKI/good.chain.pem" --key "$PKI/good.key"; Q_PID=$SRV
ns_wait_port $NS_S 443 udp
ns_cap_start $NS_S eth0 $F "udp port 443"
ns_cli $NS_C "$PY" "$TOOLS/quic_pair.py" client --host $S4 --port 443 --sni www.example.com --path /
cap_stop $F; srv_stop $Q_PID
expect $F '{"description": "QUIC v1 + HTTP/3 GET (aioquic client -> aioquic server)", "tool": "aioquic",
  "transport": "udp", "client": "10.77.0.10", "server": "10.77.0.20", "server_port": 443, "quic_version": 1,
  "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384", "server_name": "www.example.com",
  "alpn_offered": ["h3"], "handshake_complete": true, "cert": "good", "cert_visible": false}'

F=ssh_openssh.pcap
SD=$WORK/ssh; mkdir -p "$SD" /run/sshd
ssh-keygen -q -t ed25519 -N '' -C hostkey -f "$SD/hostkey" >> "$LOG" 2>&1
ssh-keygen -q -t ed25519 -N '' -C alice@client -f "$SD/id" >> "$LOG" 2>&1
cp "$SD/id.pub" "$SD/authorized_keys"
ns_srv $NS_S /usr/sbin/sshd -D -e -f /dev/null -p 22 -o ListenAddress=$S4 -h "$SD/hostkey" -o PidFile=none \
  -o AuthorizedKeysFile="$SD/authorized_keys" -o StrictModes=no -o PasswordAuthentication=no \
  -o PermitRootLogin=prohibit-password -o UsePAM=no; SSH_PID=$SRV
ns_wait_port $NS_S 22
ns_cap_start $NS_S eth0 $F "tcp port 22"
ns_cli $NS_C ssh -n -F /dev/null -i "$SD/id" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o IdentitiesOnly=yes root@$S4 'echo hello from ssh'
cap_stop $F; srv_stop $SSH_PID
SSH_VER=$(ssh -V 2>&1 | sed 's/,.*//')   # e.g. OpenSSH_9.2p1 Debian-2+deb12u7
expect $F '{"description": "SSH-2 with public-key login and one command (OpenSSH client -> sshd)",
  "tool": "OpenSSH", "transport": "tcp", "client": "10.77.0.10", "server": "10.77.0.20", "server_port": 22,
  "ssh_client_banner_prefix": "SSH-2.0-'"${SSH_VER%% *}"'", "ssh_server_banner_prefix": "SSH-2.0-'"${SSH_VER%% *}"'"}'

# ================================================================== 8. capture formats
F=nanosecond_tls13.pcap
ns_cap_start $NS_S eth0 $F "tcp port 443" --time-stamp-precision=nano
ns_srv $NS_S "${SSLD[@]}" -accept 443 $(chain good) -alpn http/1.1
ns_wait_port $NS_S 443
ns_cli $NS_C "${CURL[@]}" $(resolve www.example.com 443 $S4) https://www.example.com/
srv_stop; cap_stop $F
expect $F '{"description": "TLS 1.3 conversation in a nanosecond-resolution pcap (magic a1b23c4d)",
  "tool": "tcpdump --time-stamp-precision=nano", "ts_precision": "ns", "transport": "tcp",
  "client": "10.77.0.10", "server": "10.77.0.20", "server_port": 443, "tls_version": "TLS 1.3",
  "tls_cipher": "TLS_AES_256_GCM_SHA384", "server_name": "www.example.com", "handshake_complete": true,
  "cert": "good", "cert_visible": false}'

F=snaplen96.pcap
ns_cap_start $NS_S eth0 $F "tcp port 443" -s 96
ns_srv $NS_S "${SSLD[@]}" -accept 443 $(chain good) -alpn http/1.1
ns_wait_port $NS_S 443
ns_cli $NS_C "${CURL[@]}" --tls-max 1.2 $(resolve www.example.com 443 $S4) https://www.example.com/
srv_stop; cap_stop $F
expect $F '{"description": "TLS 1.2 conversation captured with snaplen 96: every frame cut to at most 96 bytes, ClientHello cut inside its random",
  "tool": "tcpdump -s 96", "snaplen": 96, "truncated": true, "transport": "tcp", "client": "10.77.0.10",
  "server": "10.77.0.20", "server_port": 443}'

F=multi_if.pcapng
ns_srv $NS_S "$PY" -m http.server 8080 --bind 127.0.0.1 --directory "$W"; HTTP_PID=$SRV
ns_wait_port $NS_S 8080
ns_srv $NS_S "${SSLD[@]}" -accept 443 $(chain good) -alpn http/1.1; TLS_PID=$SRV
ns_wait_port $NS_S 443
rm -f "$OUT/$F"
ip netns exec $NS_S dumpcap -q -i eth0 -f "tcp port 443" -i any -y LINUX_SLL2 -f "tcp port 8080" -w "$OUT/$F" 2> "$WORK/dumpcap.err" &
DC_PID=$!
for _ in $(seq 100); do [ "$(grep -c "Capturing on" "$WORK/dumpcap.err" 2>/dev/null)" -ge 1 ] && break; sleep 0.05; done
sleep 0.5
ns_cli $NS_C "${CURL[@]}" $(resolve www.example.com 443 $S4) https://www.example.com/
ns_cli $NS_S curl -sS -o /dev/null --max-time 10 http://127.0.0.1:8080/index.html
sleep 0.5; kill -TERM $DC_PID; wait $DC_PID 2>/dev/null
srv_stop $TLS_PID; srv_stop $HTTP_PID
printf '%-34s %6s packets %7s bytes\n' "$F" "$(capinfos -c -M -T "$OUT/$F" | awk -F'\t' 'NR==2{print $2}')" "$(stat -c %s "$OUT/$F")" | tee -a "$LOG"
expect $F '{"description": "pcapng with two interfaces of different link types: eth0 (Ethernet) holding a TLS 1.3 conversation, and any (LINUX_SLL2) holding a plaintext HTTP GET over 127.0.0.1",
  "tool": "dumpcap -i eth0 -i any -y LINUX_SLL2", "format": "pcapng", "linktypes": ["EN10MB", "LINUX_SLL2"],
  "transport": "tcp", "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384",
  "server_name": "www.example.com", "handshake_complete": true, "cert": "good", "cert_visible": false,
  "http_requests": [{"method": "GET", "host": "127.0.0.1:8080", "uri": "/index.html"}], "http_status": [200]}'

# ================================================================== 9. mirror tunnels
# 9a. kernel VXLAN between two namespaces; traffic crosses the inner addresses, capture on the underlay
mkns $NS_A noipv6; mkns $NS_B noipv6
veth $NS_A eth0 02:00:0a:4d:01:01 $NS_B eth0 02:00:0a:4d:01:02
ip -n $NS_A addr add 10.77.1.1/24 dev eth0; ip -n $NS_B addr add 10.77.1.2/24 dev eth0
ip -n $NS_A link add vx0 address 02:00:0a:58:00:0a type vxlan id 4242 dstport 4789 local 10.77.1.1 remote 10.77.1.2 dev eth0
ip -n $NS_B link add vx0 address 02:00:0a:58:00:14 type vxlan id 4242 dstport 4789 local 10.77.1.2 remote 10.77.1.1 dev eth0
for ns in $NS_A $NS_B; do quiet_if $ns vx0; ip -n $ns link set vx0 up; done
ip -n $NS_A addr add 10.88.0.10/24 dev vx0; ip -n $NS_B addr add 10.88.0.20/24 dev vx0
tunnel_traffic() {  # inner-server-ip (TLS 1.3 on 443 + HTTP on 80 in $NS_B, clients in $NS_A)
  local ip=$1 tls http
  ns_srv $NS_B "$PY" -m http.server 80 --bind "$ip" --directory "$W"; http=$SRV
  ns_srv $NS_B "${SSLD[@]}" -accept "$ip:443" $(chain good) -alpn http/1.1; tls=$SRV
  ns_wait_port $NS_B 80; ns_wait_port $NS_B 443
  ns_cli $NS_A "${CURL[@]}" $(resolve www.example.com 443 "$ip") https://www.example.com/
  ns_cli $NS_A curl -sS -o /dev/null --max-time 10 $(resolve www.example.com 80 "$ip") http://www.example.com/index.html
  srv_stop $tls; srv_stop $http
}
F=vxlan_kernel.pcap
ns_cap_start $NS_B eth0 $F "udp port 4789"
tunnel_traffic 10.88.0.20
cap_stop $F
expect $F '{"description": "Linux kernel VXLAN (VNI 4242, UDP 4789) between two namespaces; inner curl https (TLS 1.3) and plain HTTP across the inner addresses; captured on the underlay",
  "tool": "ip link type vxlan + curl/openssl/python http.server", "tunnel": "vxlan", "vni": 4242,
  "outer_addresses": ["10.77.1.1", "10.77.1.2"], "outer_udp_dport": 4789, "inner_client": "10.88.0.10",
  "inner_server": "10.88.0.20", "transport": "tcp", "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384",
  "server_name": "www.example.com", "handshake_complete": true, "cert": "good", "cert_visible": false,
  "http_requests": [{"method": "GET", "host": "www.example.com", "uri": "/index.html"}], "http_status": [200]}'
ip -n $NS_A link del vx0; ip -n $NS_B link del vx0

# 9b. GENEVE: this kernel has no geneve link type, so tools/geneve_tunnel.py encapsulates in userspace
ip netns exec $NS_A ip tuntap add dev gnv0 mode tap; ip netns exec $NS_B ip tuntap add dev gnv0 mode tap
ip -n $NS_A link set gnv0 address 02:00:0a:59:00:0a mtu 1450; ip -n $NS_B link set gnv0 address 02:00:0a:59:00:14 mtu 1450
ns_srv $NS_A "$PY" "$TOOLS/geneve_tunnel.py" --dev gnv0 --mode tap --local 10.77.1.1 --remote 10.77.1.2 --vni 77; GA=$SRV
ns_srv $NS_B "$PY" "$TOOLS/geneve_tunnel.py" --dev gnv0 --mode tap --local 10.77.1.2 --remote 10.77.1.1 --vni 77; GB=$SRV
ns_wait_port $NS_A 6081 udp; ns_wait_port $NS_B 6081 udp
for ns in $NS_A $NS_B; do quiet_if $ns gnv0; ip -n $ns link set gnv0 up; done
ip -n $NS_A addr add 10.89.0.10/24 dev gnv0; ip -n $NS_B addr add 10.89.0.20/24 dev gnv0
F=geneve_userspace.pcap
ns_cap_start $NS_B eth0 $F "udp port 6081"
tunnel_traffic 10.89.0.20
cap_stop $F; srv_stop $GA; srv_stop $GB
expect $F '{"description": "GENEVE (VNI 77, UDP 6081, protocol 0x6558, inner Ethernet, no options) between two namespaces, encapsulated by tools/geneve_tunnel.py (no kernel geneve here); inner curl https (TLS 1.3) and plain HTTP",
  "tool": "tools/geneve_tunnel.py --mode tap + curl/openssl/python http.server", "tunnel": "geneve", "vni": 77,
  "geneve_proto_type": 25944, "geneve_options": [], "outer_addresses": ["10.77.1.1", "10.77.1.2"],
  "outer_udp_dport": 6081, "inner_client": "10.89.0.10", "inner_server": "10.89.0.20", "transport": "tcp",
  "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384", "server_name": "www.example.com",
  "handshake_complete": true, "cert": "good", "cert_visible": false,
  "http_requests": [{"method": "GET", "host": "www.example.com", "uri": "/index.html"}], "http_status": [200]}'

ip netns exec $NS_A ip tuntap add dev gwl0 mode tun; ip netns exec $NS_B ip tuntap add dev gwl0 mode tun
ns_srv $NS_A "$PY" "$TOOLS/geneve_tunnel.py" --dev gwl0 --mode tun --aws --local 10.77.1.1 --remote 10.77.1.2 --vni 0; GA=$SRV
ns_srv $NS_B "$PY" "$TOOLS/geneve_tunnel.py" --dev gwl0 --mode tun --aws --local 10.77.1.2 --remote 10.77.1.1 --vni 0; GB=$SRV
ns_wait_port $NS_A 6081 udp; ns_wait_port $NS_B 6081 udp
for ns in $NS_A $NS_B; do ip -n $ns link set gwl0 mtu 1400; quiet_if $ns gwl0; ip -n $ns link set gwl0 up; done
ip -n $NS_A addr add 10.90.0.10 peer 10.90.0.20 dev gwl0; ip -n $NS_B addr add 10.90.0.20 peer 10.90.0.10 dev gwl0
F=geneve_gwlb.pcap
ns_cap_start $NS_B eth0 $F "udp port 6081"
tunnel_traffic 10.90.0.20
cap_stop $F; srv_stop $GA; srv_stop $GB
expect $F '{"description": "GENEVE as AWS Gateway Load Balancer sends it: VNI 0, protocol 0x0800 (inner IPv4, no inner Ethernet), AWS TLVs class 0x0108 types 1 (endpoint id 0x0a1b2c3d4e5f6071), 2 (attachment id 0x42), 3 (per-flow cookie); encapsulated by tools/geneve_tunnel.py",
  "tool": "tools/geneve_tunnel.py --mode tun --aws + curl/openssl/python http.server", "tunnel": "geneve", "vni": 0,
  "geneve_proto_type": 2048, "geneve_options": [[264, 1], [264, 2], [264, 3]],
  "outer_addresses": ["10.77.1.1", "10.77.1.2"], "outer_udp_dport": 6081, "inner_client": "10.90.0.10",
  "inner_server": "10.90.0.20", "transport": "tcp", "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384",
  "server_name": "www.example.com", "handshake_complete": true, "cert": "good", "cert_visible": false,
  "http_requests": [{"method": "GET", "host": "www.example.com", "uri": "/index.html"}], "http_status": [200]}'

# 9c. Traffic-Mirroring-like one-way feed: tc mirred copies both directions of itc-srv eth0 into a
#     kernel VXLAN device (VNI 4243) whose remote is a collector namespace; capture at the collector.
mkns $NS_M noipv6
veth $NS_S eth1 02:00:0a:4d:02:01 $NS_M eth0 02:00:0a:4d:02:02
ip -n $NS_S link set eth1 mtu 9001; ip -n $NS_M link set eth0 mtu 9001
ip -n $NS_S addr add 10.77.2.1/24 dev eth1; ip -n $NS_M addr add 10.77.2.2/24 dev eth0
ip -n $NS_S link add vxm address 02:00:0a:4d:02:11 type vxlan id 4243 dstport 4789 local 10.77.2.1 remote 10.77.2.2 dev eth1
ip -n $NS_M link add vxc type vxlan id 4243 dstport 4789 local 10.77.2.2 dev eth0   # only absorbs the feed
for x in "$NS_S vxm" "$NS_M vxc"; do set -- $x; quiet_if "$1" "$2"; ip -n "$1" link set "$2" up; done
inns $NS_S tc qdisc add dev eth0 clsact
inns $NS_S tc filter add dev eth0 ingress protocol all prio 1 u32 match u32 0 0 action mirred egress mirror dev vxm
inns $NS_S tc filter add dev eth0 egress protocol all prio 1 u32 match u32 0 0 action mirred egress mirror dev vxm
F=vxlan_mirror.pcap
ns_srv $NS_S "$PY" -m http.server 80 --bind $S4 --directory "$W"; HTTP_PID=$SRV
ns_srv $NS_S "${SSLD[@]}" -accept 443 $(chain good) -alpn http/1.1; TLS_PID=$SRV
ns_wait_port $NS_S 80; ns_wait_port $NS_S 443
ns_cap_start $NS_M eth0 $F "udp port 4789"
ns_cli $NS_C "${CURL[@]}" --tls-max 1.2 $(resolve www.example.com 443 $S4) https://www.example.com/
ns_cli $NS_C curl -sS -o /dev/null --max-time 10 $(resolve www.example.com 80 $S4) http://www.example.com/index.html
cap_stop $F; srv_stop $TLS_PID; srv_stop $HTTP_PID
inns $NS_S tc qdisc del dev eth0 clsact
expect $F '{"description": "one-way mirror feed like AWS VPC Traffic Mirroring: tc mirred copies both directions of the server interface into kernel VXLAN (VNI 4243, MTU 9001 underlay) towards a collector; inner curl https (TLS 1.2) and plain HTTP between 10.77.0.10 and 10.77.0.20",
  "tool": "tc u32 + mirred, ip link type vxlan, curl/openssl/python http.server", "tunnel": "vxlan", "vni": 4243,
  "mirror_one_way": true, "outer_src": "10.77.2.1", "outer_dst": "10.77.2.2", "outer_udp_dport": 4789,
  "inner_client": "10.77.0.10", "inner_server": "10.77.0.20", "transport": "tcp", "tls_version": "TLS 1.2",
  "tls_cipher": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "server_name": "www.example.com",
  "handshake_complete": true, "cert": "good", "cert_chain": ["good", "int"], "cert_visible": true,
  "http_requests": [{"method": "GET", "host": "www.example.com", "uri": "/index.html"}], "http_status": [200]}'

# ================================================================== manifest + summary
TOOLVERS=$(printf '{"openssl": "%s", "curl": "%s", "gnutls": "%s", "tcpdump": "%s", "tshark": "%s", "openssh": "%s", "python": "%s", "kernel": "%s"}' \
  "$(openssl version | cut -d' ' -f2)" "$(curl --version | head -1 | cut -d' ' -f2)" \
  "$(gnutls-cli --version | head -1 | awk '{print $2}')" "$(tcpdump --version 2>&1 | head -1 | awk '{print $3}')" \
  "$(tshark --version 2>/dev/null | head -1 | awk '{print $3}')" "$SSH_VER" "$($PY -c 'import platform; print(platform.python_version())')" \
  "$(uname -r)")
"$PY" "$TOOLS/manifest.py" --expect "$EXPECT" --pki "$PKI" --captures "$OUT" --tools "$TOOLVERS" \
  -o "$OUT/manifest.json" || die "manifest.py failed"
"$PY" "$TOOLS/summarize.py" "$OUT" > "$OUT/tshark_summary.txt" 2>> "$LOG" || echo "summary failed" >&2
echo "total: $(du -ch "$OUT"/*.pcap "$OUT"/*.pcapng "$OUT"/*.gz | tail -1 | cut -f1); took $(( $(date +%s) - T0 )) s"
