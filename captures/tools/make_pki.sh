#!/usr/bin/env bash
# Throw-away test PKI for recording captures/: make_pki.sh DIR
# Root CA -> issuing (intermediate) CA -> leaves, plus a self-signed leaf. Everything here is
# regenerated on every run; only the certificates end up in the pcaps, the keys are deleted
# with DIR by make_captures.sh.
set -euo pipefail
D=$1
mkdir -p "$D/db"
cd "$D"
: > db/index
echo 1001 > db/serial
NOW_MINUS_1D=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)
PLUS_397D=$(date -u -d '+396 days' +%Y%m%d%H%M%SZ)   # 397 days after NOW_MINUS_1D
EMPTY_REQ_CNF=$PWD/req.cnf
printf '[req]\ndistinguished_name=dn\n[dn]\n' > "$EMPTY_REQ_CNF"
cat > ca.cnf <<'CNF'
[ca]
default_ca = CA_default
[CA_default]
database = db/index
new_certs_dir = db
serial = db/serial
policy = policy_any
unique_subject = no
copy_extensions = none
default_md = sha256
email_in_dn = no
[policy_any]
countryName = optional
organizationName = optional
commonName = supplied
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = ${ENV::SAN}
[leaf_ec]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = ${ENV::SAN}
[int]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
export SAN=DNS:unused

# root CA (self-signed, 10 years)
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -keyout root.key -out root.crt -days 3650 \
  -config "$EMPTY_REQ_CNF" -subj "/C=US/O=Intransit Test PKI/CN=Intransit Test Root CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash"
# issuing CA signed by the root (5 years)
openssl req -newkey rsa:2048 -nodes -keyout int.key -out int.csr -config "$EMPTY_REQ_CNF" \
  -subj "/C=US/O=Intransit Test PKI/CN=Intransit Test Issuing CA 1"
openssl ca -batch -notext -config ca.cnf -cert root.crt -keyfile root.key -extensions int \
  -in int.csr -out int.crt -days 1825

# leaf NAME KEYSPEC CN SAN [openssl-ca options...]   (signed by the issuing CA)
leaf() {
  local name=$1 keyspec=$2 cn=$3 san=$4; shift 4
  local ext=leaf
  case $keyspec in ec:*) ext=leaf_ec;; esac
  case $keyspec in
    rsa:*) openssl req -newkey "$keyspec" -nodes -keyout "$name.key" -out "$name.csr" -config "$EMPTY_REQ_CNF" -subj "/O=Example Inc/CN=$cn" ;;
    ec:*)  openssl req -newkey ec -pkeyopt "ec_paramgen_curve:${keyspec#ec:}" -nodes -keyout "$name.key" -out "$name.csr" -config "$EMPTY_REQ_CNF" -subj "/O=Example Inc/CN=$cn" ;;
  esac
  SAN=$san openssl ca -batch -notext -config ca.cnf -cert int.crt -keyfile int.key -extensions $ext \
    -in "$name.csr" -out "$name.crt" "$@"
  cat "$name.crt" int.crt > "$name.chain.pem"   # leaf + intermediate, what the servers send
}
VALID=(-startdate "$NOW_MINUS_1D" -enddate "$PLUS_397D")
leaf good       rsa:2048    www.example.com      "DNS:www.example.com,DNS:example.com"   "${VALID[@]}"
leaf ecdsa      ec:P-256    api.example.com      "DNS:api.example.com"                   "${VALID[@]}"
leaf mail       rsa:2048    mail.example.com     "DNS:mail.example.com"                  "${VALID[@]}"
leaf ftp        rsa:2048    ftp.example.com      "DNS:ftp.example.com"                   "${VALID[@]}"
leaf other      rsa:2048    other.example.net    "DNS:other.example.net"                 "${VALID[@]}"
leaf expired    rsa:2048    expired.example.com  "DNS:expired.example.com"  -startdate 20200101000000Z -enddate 20210101000000Z
leaf future     rsa:2048    future.example.com   "DNS:future.example.com"   -startdate 20990101000000Z -enddate 21000101000000Z
leaf rsa1024    rsa:1024    weak.example.com     "DNS:weak.example.com"                  "${VALID[@]}"
leaf sha1       rsa:2048    sha1.example.com     "DNS:sha1.example.com"     -md sha1     "${VALID[@]}"

# self-signed end-entity certificate (not a CA), RSA 2048, SHA-256
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -keyout selfsigned.key -out selfsigned.crt -days 397 \
  -config "$EMPTY_REQ_CNF" -subj "/O=Example Inc/CN=selfsigned.example.com" \
  -addext "basicConstraints=critical,CA:FALSE" -addext "subjectAltName=DNS:selfsigned.example.com" \
  -addext "extendedKeyUsage=serverAuth"
cp selfsigned.crt selfsigned.chain.pem
rm -f ./*.csr
