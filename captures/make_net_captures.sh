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

GROUP=net NET=81
# shellcheck source=tools/pair_lib.sh
. "$HERE/tools/pair_lib.sh"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tcpdump)"
for c in ip tcpdump tshark capinfos ethtool openssl slapd slapadd ldapwhoami snmpd snmpget dnsmasq dig \
    telnet chronyd logger socat; do
  command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || die "missing $c (try --install)"
done
[ -x /usr/sbin/telnetd ] || die "missing /usr/sbin/telnetd (try --install)"
export PATH=$PATH:/usr/sbin

pair_setup  # itc-net-cli 10.81.0.10, itc-net-srv 10.81.0.20; WORK, LOG, EXPECT and the helpers

# ================================================================== LDAP (slapd)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/ldap.key" -out "$WORK/ldap.crt" -days 30 \
  -subj "/CN=ldap.example.org" >> "$LOG" 2>&1
mkdir -p "$WORK/ldapdb"
cat > "$WORK/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $WORK/slapd.pid
TLSCertificateFile $WORK/ldap.crt
TLSCertificateKeyFile $WORK/ldap.key
database mdb
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw admin-not-used
directory $WORK/ldapdb
access to * by * read
CONF
cat > "$WORK/base.ldif" <<LDIF
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
slapadd -f "$WORK/slapd.conf" -l "$WORK/base.ldif" >> "$LOG" 2>&1 || die "slapadd (see $LOG)"
srv slapd -f "$WORK/slapd.conf" -h "ldap://$S4:389/" -d 0; SLAPD=$SRV
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
mkdir -p "$WORK/snmp"
cat > "$WORK/snmpd.conf" <<CONF
rocommunity s3cret-snmp 10.81.0.0/16
createUser alice SHA s3cret-snmp-auth AES s3cret-snmp-priv
createUser bob SHA s3cret-snmp-auth
rouser alice priv
rouser bob auth
CONF
export SNMP_PERSISTENT_DIR=$WORK/snmp MIBS=
srv snmpd -f -Lo -C -c "$WORK/snmpd.conf" -p "$WORK/snmpd.pid" "udp:$S4:161"; SNMPD=$SRV
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
  --pid-file="$WORK/dnsmasq.pid"; DNSMASQ=$SRV
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
cat > "$WORK/chrony-srv.conf" <<CONF
local stratum 8
allow 10.81.0.0/16
bindaddress $S4
port 123
cmdport 0
pidfile $WORK/chronyd-srv.pid
driftfile $WORK/chrony.drift
CONF
srv chronyd -d -x -f "$WORK/chrony-srv.conf"; CHRONYD=$SRV
wait_port 123 udp
F=ntp_chrony.pcap
cap_start $F "udp port 123"
cli chronyd -Q -f /dev/null -t 8 "server $S4 iburst maxsamples 2" "cmdport 0" "pidfile $WORK/chronyd-cli.pid"
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
  "$(tool_version tcpdump --version)" "$(tool_version tshark --version)" "$(uname -r)")
write_manifest "$TOOLVERS"
echo "done: $(ls "$OUT" | grep -cE '^(ldap|snmp|telnet|dns|ntp|syslog)_') net captures"
