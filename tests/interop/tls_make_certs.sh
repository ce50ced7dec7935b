#!/usr/bin/env bash
# tls_make_certs.sh DIR: test credentials for the TLS tests, made at test time with the openssl
# CLI (no private key is ever committed). ECDSA P-256 throughout, valid for two days:
#   ca.pem/ca.key                 the CA intaked trusts for client certificates (--tls-client-ca)
#   server.pem/server.key         "localhost" (SAN DNS:localhost, IP:127.0.0.1), signed by ca
#   rotated.pem/rotated.key       another server certificate (O=rotated), for reload tests
#   stranger.key                  a key that matches no certificate (a broken reload)
#   client-uri.pem/.key           URI SAN spiffe://intake/test/producer-1 (and CN uri-client)
#   client-cn.pem/.key            only a subject CN: cn-client
#   client-noname.pem/.key        neither a URI SAN nor a CN (O=intake): no principal
#   other-ca.pem, client-other.pem/.key   a client certificate from a CA intaked does not trust
#   empty-ca.pem                  a file with no certificate in it
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# sign NAME SUBJECT ISSUER EXTENSIONS: NAME.pem for NAME.key, signed by ISSUER.pem/ISSUER.key
sign() {
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$4" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
for ca in ca other-ca; do
  key "$ca.key"
  openssl req -x509 -new -key "$ca.key" -subj "/CN=intake test $ca" -days 2 -out "$ca.pem" 2>/dev/null
done
for name in server rotated stranger client-uri client-cn client-noname client-other; do key "$name.key"; done
sign server "/CN=localhost" ca "subjectAltName=DNS:localhost,IP:127.0.0.1"
sign rotated "/O=rotated/CN=localhost" ca "subjectAltName=DNS:localhost,IP:127.0.0.1"
sign client-uri "/CN=uri-client" ca "subjectAltName=URI:spiffe://intake/test/producer-1"
sign client-cn "/CN=cn-client" ca "basicConstraints=CA:FALSE"
sign client-noname "/O=intake" ca "basicConstraints=CA:FALSE"
sign client-other "/CN=stranger-client" other-ca "basicConstraints=CA:FALSE"
printf 'no certificate here\n' >empty-ca.pem
