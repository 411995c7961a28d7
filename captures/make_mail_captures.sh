#!/usr/bin/env bash
# Record the mail captures and an HTTP-to-HTTPS redirect (capture group "mail") into captures/, with
# their facts in captures/manifest.mail.json (same shape as manifest.json; checked by
# tests/captures/test_mail_captures.py, with tshark).
#
# Real software in two network namespaces this script creates and deletes itself (itc-mail-cli
# 10.84.0.10, itc-mail-srv 10.84.0.20):
#   - dovecot (IMAP :143, POP3 :110) from a throwaway configuration in a temp dir: a passwd-file user
#     alice / s3cret-imap (the POP3 sessions log in with the same account), a self-signed certificate
#     made here with `openssl req`. Once with `ssl = yes` (STARTTLS / STLS offered) and once with
#     `ssl = no` (not offered); `disable_plaintext_auth = no`, so a login in the clear is accepted.
#   - curl (imap://, pop3://; --ssl-reqd upgrades before the login, without it curl logs in with
#     SASL PLAIN in the clear) and Python's imaplib / poplib (LOGIN, USER + PASS in the clear).
#   - an HTTP server (tools/mail_redirect_http.py, a http.server subclass) on :80 answering every
#     request with `301 Location: https://<Host>/<path>`, and `openssl s_server -WWW` on :443;
#     `curl -L --resolve` follows the redirect.
# Credentials are obviously fake (alice / s3cret-imap). Nothing leaves the machine.
#
#   sudo captures/make_mail_captures.sh            # record into captures/
#   sudo captures/make_mail_captures.sh --install  # apt-get dovecot and the tools first
#   OUT=/tmp/x captures/make_mail_captures.sh      # write somewhere else
#   KEEP_WORK=1 ...                                # keep the temp dir (configuration, logs)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
PY=${PYTHON:-python3}
T0=$(date +%s)

if [ "${1:-}" = "--install" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=900 --no-install-recommends \
    tcpdump tshark iproute2 ethtool openssl curl dovecot-imapd dovecot-pop3d >/dev/null
fi

GROUP=mail NET=84
# shellcheck source=tools/pair_lib.sh
. "$HERE/tools/pair_lib.sh"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tcpdump)"
export PATH=$PATH:/usr/sbin
for c in ip tcpdump tshark capinfos ethtool openssl curl dovecot ss timeout "$PY"; do
  command -v "$c" >/dev/null || die "missing $c (try --install)"
done

pair_setup  # itc-mail-cli 10.84.0.10, itc-mail-srv 10.84.0.20; WORK, LOG, EXPECT and the helpers

# self-signed server certificates (mail.example.com for dovecot, www.example.com for the HTTPS server)
for cn in mail www; do
  openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=$cn.example.com" -addext "subjectAltName=DNS:$cn.example.com" \
    -days 30 -keyout "$WORK/$cn.key" -out "$WORK/$cn.crt" >> "$LOG" 2>&1 || die "openssl req"
  chmod 644 "$WORK/$cn.crt" "$WORK/$cn.key"
done

COMMON='"client": "'$C4'", "server": "'$S4'", "transport": "tcp"'
USER=alice PASS=s3cret-imap

# ================================================================== dovecot (IMAP, POP3)
DV=$WORK/dovecot
mkdir -p "$DV/run" "$DV/state" "$DV/home/alice/Maildir/"{new,cur,tmp}
printf '%s:{PLAIN}%s\n' "$USER" "$PASS" > "$DV/users"
chmod 644 "$DV/users"
printf 'From: bob@example.com\r\nTo: alice@example.com\r\nSubject: hello\r\nDate: Sun, 6 Dec 2026 18:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nA small test message.\r\n' \
  > "$DV/home/alice/Maildir/new/1765044000.M1P1.mail"
chown -R nobody:nogroup "$DV/home"
dv_conf() {  # ssl yes|no
  cat > "$DV/dovecot.conf" <<EOF
base_dir = $DV/run
state_dir = $DV/state
instance_name = itc-mail
log_path = $DV/dovecot.log
auth_verbose = yes
protocols = imap pop3
listen = $S4
ssl = $1
ssl_cert = <$WORK/mail.crt
ssl_key = <$WORK/mail.key
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DV/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$DV/home/%u
}
mail_location = maildir:~/Maildir
first_valid_uid = 1
service imap-login {
  inet_listener imap {
    address = $S4
    port = 143
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    address = $S4
    port = 110
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF
}
dv_start() {  # ssl yes|no
  dv_conf "$1"
  srv dovecot -F -c "$DV/dovecot.conf"
  DV_PID=$SRV
  wait_port 143; wait_port 110
}
DV_VER=$(dovecot --version | awk '{print $1}')
CURL_VER=$(curl --version | head -1 | awk '{print $2}')
RESOLVE=(--resolve "mail.example.com:143:$S4" --resolve "mail.example.com:110:$S4")

dv_start yes
F=imap_starttls.pcap
cap_start $F "tcp port 143"
cli curl -sS -k --ssl-reqd "${RESOLVE[@]}" -u "$USER:$PASS" "imap://mail.example.com/INBOX;UID=1"
cap_stop $F
expect $F '{"description": "curl --ssl-reqd imap:// -> dovecot (ssl = yes): CAPABILITY, STARTTLS, OK, then TLS (SNI mail.example.com); the login and the FETCH inside TLS",
  "tool": "curl + dovecot", '"$COMMON"', "sessions": [{"server_port": 143, "app_protocol": "imap", "encrypted": true,
  "protection": "starttls", "starttls": "completed", "tls_server_name": "mail.example.com", "handshake_complete": true}],
  "credentials": []}'

F=imap_plain_starttls_offered.pcap
cap_start $F "tcp port 143"
cli curl -sS "${RESOLVE[@]}" -u "$USER:$PASS" "imap://mail.example.com/INBOX;UID=1"
cap_stop $F
expect $F '{"description": "curl imap:// (no --ssl) -> dovecot (ssl = yes): STARTTLS offered, not used; AUTHENTICATE PLAIN with an initial response in the clear, then SELECT and FETCH",
  "tool": "curl + dovecot", '"$COMMON"', "sessions": [{"server_port": 143, "app_protocol": "imap", "encrypted": false,
  "protection": "none", "starttls": "offered_not_used"}],
  "credentials": [{"mechanism": "plain", "user": "'$USER'", "password": "'$PASS'", "secret_in_clear": true, "accepted": true}]}'

F=pop3_stls.pcap
cap_start $F "tcp port 110"
cli curl -sS -k --ssl-reqd "${RESOLVE[@]}" -u "$USER:$PASS" "pop3://mail.example.com/1"
cap_stop $F
expect $F '{"description": "curl --ssl-reqd pop3:// -> dovecot (ssl = yes): CAPA, STLS, +OK, then TLS (SNI mail.example.com); the login and the RETR inside TLS",
  "tool": "curl + dovecot", '"$COMMON"', "sessions": [{"server_port": 110, "app_protocol": "pop3", "encrypted": true,
  "protection": "starttls", "starttls": "completed", "tls_server_name": "mail.example.com", "handshake_complete": true}],
  "credentials": []}'

F=pop3_plain_stls_offered.pcap
cap_start $F "tcp port 110"
cli curl -sS "${RESOLVE[@]}" -u "$USER:$PASS" "pop3://mail.example.com/1"
cap_stop $F
srv_stop $DV_PID
expect $F '{"description": "curl pop3:// (no --ssl) -> dovecot (ssl = yes): CAPA lists STLS, not used; AUTH PLAIN in the clear, then RETR 1",
  "tool": "curl + dovecot", '"$COMMON"', "sessions": [{"server_port": 110, "app_protocol": "pop3", "encrypted": false,
  "protection": "none", "starttls": "offered_not_used"}],
  "credentials": [{"mechanism": "plain", "user": "'$USER'", "password": "'$PASS'", "secret_in_clear": true, "accepted": true}]}'

dv_start no
F=imap_login_no_tls.pcap
cap_start $F "tcp port 143"
cli "$PY" -c 'import imaplib, sys
m = imaplib.IMAP4(sys.argv[1], 143, timeout=10)
print(m.capabilities)
m.login(sys.argv[2], sys.argv[3])
print(m.select("INBOX"))
m.logout()' $S4 "$USER" "$PASS"
cap_stop $F
expect $F '{"description": "Python imaplib -> dovecot (ssl = no): CAPABILITY without STARTTLS, LOGIN in the clear, SELECT, LOGOUT",
  "tool": "python imaplib + dovecot", '"$COMMON"', "sessions": [{"server_port": 143, "app_protocol": "imap", "encrypted": false,
  "protection": "none", "starttls": "not_offered"}],
  "credentials": [{"mechanism": "login_command", "user": "'$USER'", "password": "'$PASS'", "secret_in_clear": true, "accepted": true}]}'

F=pop3_user_pass_no_tls.pcap
cap_start $F "tcp port 110"
cli "$PY" -c 'import poplib, sys
p = poplib.POP3(sys.argv[1], 110, timeout=10)
print(p.capa())
p.user(sys.argv[2]); p.pass_(sys.argv[3])
print(p.stat())
p.quit()' $S4 "$USER" "$PASS"
cap_stop $F
srv_stop $DV_PID
expect $F '{"description": "Python poplib -> dovecot (ssl = no): CAPA without STLS, USER and PASS in the clear, STAT, QUIT",
  "tool": "python poplib + dovecot", '"$COMMON"', "sessions": [{"server_port": 110, "app_protocol": "pop3", "encrypted": false,
  "protection": "none", "starttls": "not_offered"}],
  "credentials": [{"mechanism": "user_pass", "user": "'$USER'", "password": "'$PASS'", "secret_in_clear": true, "accepted": true}]}'

# ================================================================== HTTP redirected to HTTPS
WWW=$WORK/www
mkdir -p "$WWW"
printf '<html><body>hello over https</body></html>\n' > "$WWW/index.html"
srv "$PY" "$HERE/tools/mail_redirect_http.py" $S4 80
HTTP_PID=$SRV
srv sh -c "cd '$WWW' && exec openssl s_server -quiet -WWW -accept $S4:443 -cert '$WORK/www.crt' -key '$WORK/www.key'"
TLS_PID=$SRV
wait_port 80; wait_port 443
F=http_redirect_https.pcap
cap_start $F "tcp port 80 or tcp port 443"
cli curl -sS -k -L --resolve "www.example.com:80:$S4" --resolve "www.example.com:443:$S4" "http://www.example.com/index.html"
cap_stop $F
srv_stop $HTTP_PID; srv_stop $TLS_PID
expect $F '{"description": "curl -L http://www.example.com/index.html -> a Python http.server on :80 answering 301 Location: https://www.example.com/index.html, then curl follows to openssl s_server -WWW on :443 (TLS, SNI www.example.com)",
  "tool": "curl + tools/mail_redirect_http.py + openssl s_server", '"$COMMON"',
  "sessions": [{"server_port": 80, "app_protocol": "http", "encrypted": false, "protection": "none",
  "http_host": "www.example.com", "http_status": 301, "http_location": "https://www.example.com/index.html",
  "http_redirect_to_https": true},
  {"server_port": 443, "app_protocol": "tls", "encrypted": true, "protection": "tls", "tls_server_name": "www.example.com",
  "handshake_complete": true}],
  "credentials": []}'

# ================================================================== manifest
write_manifest "$(printf '{"dovecot": "%s", "curl": "%s", "python": "%s", "openssl": "%s", "tshark": "%s"}' \
  "$DV_VER" "$CURL_VER" "$("$PY" -c 'import platform; print(platform.python_version())')" "$(openssl version | awk '{print $2}')" \
  "$(tool_version tshark --version)")"
echo "took $(( $(date +%s) - T0 )) s"
