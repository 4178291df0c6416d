#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine with Node 20: installs what the tests need and
# the machine lacks (with apt-get), then the npm dependencies, then runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The Sentinel failover test (test/faults.test.ts) starts Sentinels.
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
# The cluster tests (test/cluster.test.ts, test/compose.test.ts) run nginx and check haproxy's
# config; Debian puts both in /usr/sbin. A system nginx the package may start on :80 is not used.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
# The HTTPS tests (test/tls-edge.test.ts, test/compose.test.ts) make a self-signed pair with scripts/make-cert.sh; the
# openssl command is priority optional in Debian (minimal images lack it).
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test-all: installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
npm test
