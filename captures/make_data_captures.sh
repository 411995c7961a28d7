#!/usr/bin/env bash
# Record the data-store and broker captures (capture group "data") into captures/, with their facts
# in captures/manifest.data.json (same shape as manifest.json).
#
# Real software in two network namespaces this script creates and deletes itself (itc-data-cli
# 10.82.0.10, itc-data-srv 10.82.0.20): PostgreSQL (psql -> postgres, with and without SSL, a
# cleartext-password and a SCRAM login), MariaDB (client -> mariadbd with SSL, SSL offered but not
# used, and no SSL), Redis (redis-cli -> redis-server with requirepass and an ACL user), Mosquitto
# (mosquitto_pub -> mosquitto with a password file, MQTT 3.1.1 and 5.0), memcached (text protocol:
# a Python socket client and memcstat), prosody (XMPP STARTTLS, and SASL PLAIN in the clear, from
# tools/xmpp_client.py). Credentials are obviously fake: user "alice", password
# "s3cret-<proto>". Nothing leaves the machine.
#
#   sudo captures/make_data_captures.sh            # record into captures/
#   sudo captures/make_data_captures.sh --install  # apt-get the daemons and clients first
#   OUT=/tmp/x captures/make_data_captures.sh      # write somewhere else
#   KEEP_WORK=1 ...                                # keep the temp dir (data dirs, logs)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
PY=${PYTHON:-python3}
T0=$(date +%s)

if [ "${1:-}" = "--install" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=900 --no-install-recommends \
    tcpdump tshark iproute2 ethtool openssl postgresql mariadb-server mariadb-client redis-server redis-tools \
    mosquitto mosquitto-clients memcached libmemcached-tools prosody >/dev/null
fi

GROUP=data NET=82
# shellcheck source=tools/pair_lib.sh
. "$HERE/tools/pair_lib.sh"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tcpdump)"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
for c in ip tcpdump tshark capinfos ethtool openssl runuser psql mariadb mariadbd mariadb-install-db redis-server \
  redis-cli mosquitto mosquitto_pub mosquitto_passwd memcached memcstat prosody prosodyctl ss timeout "$PGBIN/initdb" "$PGBIN/postgres"; do
  command -v "$c" >/dev/null || die "missing $c (try --install)"
done

pair_setup  # itc-data-cli 10.82.0.10, itc-data-srv 10.82.0.20; WORK, LOG, EXPECT and the helpers

# a self-signed server certificate for the TLS cases
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=db.example.com" -days 30 \
  -keyout "$WORK/server.key" -out "$WORK/server.crt" >> "$LOG" 2>&1 || die "openssl req"
chmod 644 "$WORK/server.crt" "$WORK/server.key"

COMMON='"client": "'$C4'", "server": "'$S4'", "transport": "tcp"'

# ================================================================== PostgreSQL
PGD=$WORK/pg
mkdir -p "$PGD"; chown postgres: "$PGD"
cp "$WORK/server.key" "$WORK/server.crt" "$PGD/"; chown postgres: "$PGD/server.key" "$PGD/server.crt"; chmod 600 "$PGD/server.key"
printf 's3cret-postgresql\n' > "$PGD/pw"; chown postgres: "$PGD/pw"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGD/data" -U postgres --pwfile="$PGD/pw" -A scram-sha-256 >> "$LOG" 2>&1 \
  || die "initdb (see $LOG)"
cat > "$PGD/data/pg_hba.conf" <<EOF
local all all trust
host all alice $C4/32 password
host all bob $C4/32 scram-sha-256
hostssl all carol $C4/32 scram-sha-256
EOF
pg_start() {  # ssl on|off
  srv runuser -u postgres -- "$PGBIN/postgres" -D "$PGD/data" -c listen_addresses=$S4 -c port=5432 \
    -c unix_socket_directories="$PGD" -c ssl="$1" -c ssl_cert_file="$PGD/server.crt" -c ssl_key_file="$PGD/server.key"
  PG_PID=$SRV
  wait_port 5432
}
pg_start off
for u in alice bob carol; do
  inns $NS_S runuser -u postgres -- psql -h "$PGD" -U postgres -qc "CREATE ROLE $u LOGIN PASSWORD 's3cret-postgresql'" >> "$LOG" 2>&1
done
inns $NS_S runuser -u postgres -- psql -h "$PGD" -U postgres -qc "CREATE DATABASE shop OWNER alice" >> "$LOG" 2>&1
PSQL_VER=$(psql --version | awk '{print $3}')

F=postgresql_cleartext_ssl_refused.pcap
cap_start $F "tcp port 5432"
cli env PGPASSWORD=s3cret-postgresql PGSSLMODE=prefer PGAPPNAME=psql-data psql -h $S4 -U alice -d shop -c "select 1"
cap_stop $F
expect $F '{"description": "psql (sslmode=prefer) -> postgres with ssl=off: SSLRequest answered N, then the startup in the clear and a cleartext password (pg_hba method password)",
  "tool": "psql + postgres", '"$COMMON"', "server_port": 5432, "app_protocol": "postgresql", "encrypted": false,
  "starttls": "requested_refused", "postgresql_user": "alice", "postgresql_database": "shop",
  "postgresql_application_name": "psql-data", "postgresql_auth": "cleartext",
  "credentials": [{"mechanism": "cleartext", "username": "alice", "secret_in_clear": true, "accepted": true,
  "secret": "s3cret-postgresql"}]}'

F=postgresql_scram_no_ssl.pcap
cap_start $F "tcp port 5432"
cli env PGPASSWORD=s3cret-postgresql PGSSLMODE=disable psql -h $S4 -U bob -d postgres -c "select 1"
cap_stop $F
expect $F '{"description": "psql (sslmode=disable) -> postgres: startup in the clear, SCRAM-SHA-256 login (no reusable secret)",
  "tool": "psql + postgres", '"$COMMON"', "server_port": 5432, "app_protocol": "postgresql", "encrypted": false,
  "postgresql_user": "bob", "postgresql_database": "postgres", "postgresql_auth": "scram-sha-256",
  "credentials": [{"mechanism": "scram-sha-256", "username": "bob", "secret_in_clear": false, "accepted": true}]}'
srv_stop $PG_PID

pg_start on
F=postgresql_ssl.pcap
cap_start $F "tcp port 5432"
cli env PGPASSWORD=s3cret-postgresql PGSSLMODE=require psql -h $S4 -U carol -d postgres -c "select 1"
cap_stop $F
srv_stop $PG_PID
expect $F '{"description": "psql (sslmode=require) -> postgres with ssl=on: SSLRequest answered S, then TLS (self-signed certificate)",
  "tool": "psql + postgres", '"$COMMON"', "server_port": 5432, "app_protocol": "postgresql", "encrypted": true,
  "protection": "starttls", "starttls": "completed", "handshake_complete": true, "credentials": []}'

# ================================================================== MariaDB
MD=$WORK/mariadb
mkdir -p "$MD"
mariadb-install-db --no-defaults --datadir="$MD/data" --user=root --auth-root-authentication-method=normal \
  --skip-test-db >> "$LOG" 2>&1 || die "mariadb-install-db (see $LOG)"
md_start() {  # extra mariadbd options...
  srv mariadbd --no-defaults --datadir="$MD/data" --user=root --bind-address=$S4 --port=3306 --socket="$MD/sock" \
    --pid-file="$MD/pid" --skip-name-resolve --log-error="$MD/err.log" "$@"
  MD_PID=$SRV
  wait_port 3306
}
md_start
inns $NS_S mariadb --no-defaults -S "$MD/sock" -uroot -e "CREATE USER 'alice'@'%' IDENTIFIED BY 's3cret-mysql'; CREATE DATABASE shop; GRANT ALL ON shop.* TO 'alice'@'%';" >> "$LOG" 2>&1
MYCLI=(mariadb --no-defaults -h $S4 -P 3306 -ualice -ps3cret-mysql)

F=mariadb_no_ssl.pcap
cap_start $F "tcp port 3306"
cli "${MYCLI[@]}" --skip-ssl -D shop -e "select 1"
cap_stop $F
srv_stop $MD_PID
MD_VER=$(mariadbd --version | awk '{print $3}')
expect $F '{"description": "mariadb client -> mariadbd without SSL configured: handshake without CLIENT_SSL, login in the clear (mysql_native_password)",
  "tool": "mariadb + mariadbd", '"$COMMON"', "server_port": 3306, "app_protocol": "mysql", "encrypted": false,
  "starttls": "not_offered", "mysql_user": "alice", "mysql_database": "shop", "mysql_auth_plugin": "mysql_native_password",
  "credentials": [{"mechanism": "mysql_native_password", "username": "alice", "secret_in_clear": false, "accepted": true}]}'

md_start --ssl-cert="$WORK/server.crt" --ssl-key="$WORK/server.key"
F=mariadb_ssl_offered_not_used.pcap
cap_start $F "tcp port 3306"
cli "${MYCLI[@]}" --skip-ssl -D shop -e "select 1"
cap_stop $F
expect $F '{"description": "mariadb client --skip-ssl -> mariadbd with a certificate: CLIENT_SSL offered, the client logs in in the clear",
  "tool": "mariadb + mariadbd", '"$COMMON"', "server_port": 3306, "app_protocol": "mysql", "encrypted": false,
  "starttls": "offered_not_used", "mysql_user": "alice", "mysql_database": "shop", "mysql_auth_plugin": "mysql_native_password",
  "credentials": [{"mechanism": "mysql_native_password", "username": "alice", "secret_in_clear": false, "accepted": true}]}'

F=mariadb_ssl.pcap
cap_start $F "tcp port 3306"
cli "${MYCLI[@]}" --ssl --skip-ssl-verify-server-cert -D shop -e "select 1"
cap_stop $F
srv_stop $MD_PID
expect $F '{"description": "mariadb client --ssl -> mariadbd with a certificate: SSLRequest, then TLS",
  "tool": "mariadb + mariadbd", '"$COMMON"', "server_port": 3306, "app_protocol": "mysql", "encrypted": true,
  "protection": "starttls", "starttls": "completed", "handshake_complete": true, "credentials": []}'

# ================================================================== Redis
RD=$WORK/redis
mkdir -p "$RD"
srv redis-server --bind $S4 --port 6379 --dir "$RD" --save "" --appendonly no --requirepass s3cret-redis \
  --user alice on '>s3cret-redis' '~*' '&*' '+@all'
RD_PID=$SRV
wait_port 6379
F=redis_auth.pcap
cap_start $F "tcp port 6379"
cli env REDISCLI_AUTH=s3cret-redis redis-cli -h $S4 -p 6379 set greeting hello
cli redis-cli -h $S4 -p 6379 --user alice --pass s3cret-redis --no-auth-warning get greeting
cli redis-cli -h $S4 -p 6379 -3 --user alice --pass wrong-redis --no-auth-warning ping
cap_stop $F
srv_stop $RD_PID
RD_VER=$(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/')
expect $F '{"description": "redis-cli -> redis-server (requirepass and an ACL user alice): AUTH <password> accepted, AUTH alice <password> accepted, a wrong password refused",
  "tool": "redis-cli + redis-server", '"$COMMON"', "server_port": 6379, "app_protocol": "redis", "encrypted": false,
  "flows": 3, "credentials": [{"mechanism": "auth_command", "username": null, "secret_in_clear": true, "accepted": true,
  "secret": "s3cret-redis"}, {"mechanism": "auth_command", "username": "alice", "secret_in_clear": true,
  "accepted": true, "secret": "s3cret-redis"}, {"mechanism": "auth_command", "username": "alice",
  "secret_in_clear": true, "accepted": false, "secret": "wrong-redis"}]}'

# ================================================================== Mosquitto
MQ=$WORK/mosquitto
mkdir -p "$MQ"
: > "$MQ/passwd"; chmod 600 "$MQ/passwd"
mosquitto_passwd -b "$MQ/passwd" alice s3cret-mqtt >> "$LOG" 2>&1
printf 'user root\nlistener 1883 %s\nallow_anonymous false\npassword_file %s\npersistence false\nlog_dest stderr\n' $S4 "$MQ/passwd" > "$MQ/conf"
chmod 644 "$MQ/conf"
srv mosquitto -c "$MQ/conf"
MQ_PID=$SRV
wait_port 1883
F=mqtt_password.pcap
cap_start $F "tcp port 1883"
cli mosquitto_pub -h $S4 -p 1883 -i sensor-311 -u alice -P s3cret-mqtt -t data/t -m 21.5
cli mosquitto_pub -h $S4 -p 1883 -V mqttv5 -i sensor-5 -u alice -P s3cret-mqtt -t data/t -m 21.6
cli mosquitto_pub -h $S4 -p 1883 -i sensor-bad -u alice -P wrong-mqtt -t data/t -m 0
cap_stop $F
srv_stop $MQ_PID
MQ_VER=$(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}')
expect $F '{"description": "mosquitto_pub -> mosquitto with a password file: MQTT 3.1.1 and 5.0 logins accepted, a wrong password refused (CONNACK 5 / reason 0x86)",
  "tool": "mosquitto_pub + mosquitto", '"$COMMON"', "server_port": 1883, "app_protocol": "mqtt", "encrypted": false,
  "flows": 3, "mqtt_client_ids": ["sensor-311", "sensor-5", "sensor-bad"],
  "credentials": [{"mechanism": "connect_password", "username": "alice", "secret_in_clear": true, "accepted": true,
  "secret": "s3cret-mqtt"}, {"mechanism": "connect_password", "username": "alice", "secret_in_clear": true,
  "accepted": true, "secret": "s3cret-mqtt"}, {"mechanism": "connect_password", "username": "alice",
  "secret_in_clear": true, "accepted": false, "secret": "wrong-mqtt"}]}'

# ================================================================== memcached
srv memcached -u root -l $S4 -p 11211 -U 0 -m 16
MC_PID=$SRV
wait_port 11211
F=memcached_text.pcap
cap_start $F "tcp port 11211"
cli "$PY" -c 'import socket, sys, time
s = socket.create_connection((sys.argv[1], 11211), timeout=5)
for line in (b"version\r\n", b"set greeting 0 0 5\r\nhello\r\n", b"get greeting\r\n", b"delete greeting\r\n", b"quit\r\n"):
    s.sendall(line); time.sleep(0.05)
    if line != b"quit\r\n": print(s.recv(4096))
s.close()' $S4
cli memcstat --servers=$S4:11211
cap_stop $F
srv_stop $MC_PID
MC_VER=$(memcached -h | head -1 | awk '{print $2}')
expect $F '{"description": "memcached text protocol: a Python socket client (version, set, get, delete, quit) and memcstat (version, stats, quit), to memcached without SASL",
  "tool": "python socket + memcstat -> memcached", '"$COMMON"', "server_port": 11211, "app_protocol": "memcached",
  "encrypted": false, "flows": 2, "memcached_commands": [5, 3], "memcached_version": "'"$MC_VER"'", "credentials": []}'

# ================================================================== XMPP (prosody)
XD=$WORK/prosody
mkdir -p "$XD/data"
cat > "$XD/prosody.cfg.lua" <<EOF
run_as_root = true
daemonize = false
pidfile = "$XD/prosody.pid"
data_path = "$XD/data"
interfaces = { "$S4" }
c2s_ports = { 5222 }
c2s_direct_tls_ports = { }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping" }
modules_disabled = { "s2s"; "http"; "admin_telnet"; "posix" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
log = { { levels = { min = "info" }, to = "console" } }
VirtualHost "example.com"
  ssl = { key = "$WORK/server.key"; certificate = "$WORK/server.crt"; }
EOF
inns $NS_S prosodyctl --config "$XD/prosody.cfg.lua" register alice example.com s3cret-xmpp >> "$LOG" 2>&1
srv prosody --config "$XD/prosody.cfg.lua"
XM_PID=$SRV
wait_port 5222
F=xmpp_starttls.pcap
cap_start $F "tcp port 5222"
cli "$PY" "$HERE/tools/xmpp_client.py" $S4 example.com starttls
cap_stop $F
expect $F '{"description": "a Python XMPP client -> prosody: stream features offer STARTTLS (not required), <starttls/>, <proceed/>, then TLS and the stream again inside it",
  "tool": "tools/xmpp_client.py -> prosody", '"$COMMON"', "server_port": 5222, "app_protocol": "xmpp",
  "encrypted": true, "protection": "starttls", "starttls": "completed", "xmpp_domain": "example.com",
  "xmpp_starttls_required": false, "handshake_complete": true, "credentials": []}'
F=xmpp_plain_auth.pcap
cap_start $F "tcp port 5222"
cli "$PY" "$HERE/tools/xmpp_client.py" $S4 example.com plain alice s3cret-xmpp
cap_stop $F
srv_stop $XM_PID
XM_VER=$(dpkg-query -W -f '${Version}' prosody 2>/dev/null)
expect $F '{"description": "a Python XMPP client -> prosody (allow_unencrypted_plain_auth): STARTTLS offered and not used, SASL PLAIN in the clear, <success/>",
  "tool": "tools/xmpp_client.py -> prosody", '"$COMMON"', "server_port": 5222, "app_protocol": "xmpp",
  "encrypted": false, "protection": "none", "starttls": "offered_not_used", "xmpp_domain": "example.com",
  "xmpp_starttls_required": false,
  "credentials": [{"mechanism": "plain", "username": "alice", "secret_in_clear": true, "accepted": true,
  "secret": "s3cret-xmpp"}]}'

# ================================================================== manifest
write_manifest "$(printf '{"postgresql": "%s", "mariadb": "%s", "redis": "%s", "mosquitto": "%s", "memcached": "%s", "prosody": "%s", "tshark": "%s"}' \
  "$PSQL_VER" "$MD_VER" "$RD_VER" "$MQ_VER" "$MC_VER" "$XM_VER" "$(tool_version tshark --version)")"
echo "took $(( $(date +%s) - T0 )) s"
