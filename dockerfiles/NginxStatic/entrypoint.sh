#!/bin/sh
# bee2d's NginxStatic image: writes the configuration (nginx-config.sh), makes the log directory (often a
# volume) writable by the workers, then runs nginx in the foreground. Arguments replace the nginx command.
set -eu
lib=$(dirname "$0")
sh "$lib/nginx-config.sh"
user=$(awk '$1 == "user" { sub(/;$/, "", $2); print $2; exit }' "${NGINX_CONF:-/etc/nginx/nginx.conf}")
mkdir -p /var/log/nginx
chown "$user" /var/log/nginx
if [ $# -eq 0 ]; then
	set -- nginx -g 'daemon off;'
fi
exec "$@"
