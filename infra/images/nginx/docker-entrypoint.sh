#!/bin/sh
# As the official image's entrypoint (and its 20-envsubst-on-templates.sh): before nginx starts,
# every $NGINX_ENVSUBST_TEMPLATE_DIR/**/*$NGINX_ENVSUBST_TEMPLATE_SUFFIX is rendered with
# envsubst into $NGINX_ENVSUBST_OUTPUT_DIR, filling only the variables that are set (and match
# $NGINX_ENVSUBST_FILTER, a regular expression, when given).
set -e
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
  template_dir=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
  suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
  output_dir=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
  filter=${NGINX_ENVSUBST_FILTER:-}
  # shellcheck disable=SC2016
  defined=$(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" </dev/null | sed '/^$/d; s/.*/${&}/' | tr '\n' ' ')
  if [ -d "$template_dir" ]; then
    find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
      relative=${template#"$template_dir/"}
      output="$output_dir/${relative%"$suffix"}"
      mkdir -p "$(dirname "$output")"
      echo "$0: envsubst $template > $output" >&2
      envsubst "$defined" <"$template" >"$output"
    done
  fi
  exec nginx-run "$@"
fi
exec "$@"
