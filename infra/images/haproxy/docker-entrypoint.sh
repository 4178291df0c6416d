#!/bin/sh
# As the official image's entrypoint: options as the command go to haproxy, which runs in the
# foreground (-db) in master-worker mode (-W).
set -e
if [ "${1#-}" != "$1" ]; then
  set -- haproxy "$@"
fi
if [ "$1" = haproxy ]; then
  shift
  set -- haproxy -W -db "$@"
fi
exec "$@"
