#!/usr/bin/env bash
# A self-signed TLS certificate for local HTTPS (docs/cluster.md, "HTTPS and HTTP/2"): <dir>/cert.pem and
# <dir>/key.pem, for localhost, 127.0.0.1 and ::1, valid 825 days. <dir> defaults to .certs at the
# repository root (git-ignored: never commit a key). A pair already there is kept; delete it to make
# a new one. `npm run make-cert [-- <dir>]`; `TLS=1 npm run cluster` runs it when the pair is missing.
set -euo pipefail

dir="${1:-$(cd "$(dirname "$0")/.." && pwd)/.certs}"
cert="$dir/cert.pem"
key="$dir/key.pem"

if [ -s "$cert" ] && [ -s "$key" ]; then
  echo "make-cert: $cert and $key are there already (delete them for a new pair)"
  exit 0
fi
command -v openssl >/dev/null 2>&1 || { echo "make-cert: openssl is not installed (apt-get install openssl)" >&2; exit 1; }

umask 077
mkdir -p "$dir"
trap 'rm -f "$cert.tmp" "$key.tmp"' EXIT
# Our own configuration, not the system's: the same certificate with OpenSSL 1.1 and 3. A server
# certificate (CA:FALSE, serverAuth) that clients may also take as its own authority (curl
# --cacert, Node's `ca`); ECDSA P-256, which every browser speaks.
if ! out=$(openssl req -x509 -new -nodes -sha256 -days 825 \
  -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -keyout "$key.tmp" -out "$cert.tmp" \
  -config <(cat <<'CONF'
[req]
prompt = no
distinguished_name = dn
x509_extensions = ext
[dn]
CN = localhost
O = streamcast local development
[ext]
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
CONF
) 2>&1); then
  echo "make-cert: openssl failed: $out" >&2
  exit 1
fi
chmod 644 "$cert.tmp"
mv "$key.tmp" "$key"
mv "$cert.tmp" "$cert"
echo "make-cert: wrote $cert and $key (self-signed: trust $cert, or let the browser make an exception)"
