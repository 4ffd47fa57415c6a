#!/bin/sh
# Writes nginx's configuration for bee2d's NginxStatic image from the environment bee2d gives the container
# (run by entrypoint.sh at start; the tests in dockerfiles/ run it on the host).
#
#   DOMAINS     the sites served (d1 d2, or <container>:d1,d2 ...; a /port suffix is ignored): each gets
#               its access log, /var/log/nginx/<domain>.log; other hosts log to access.log
#   HTTP_PORT   the port to listen on (default 8080)
#   NGINX_CONF  the file to write (default /etc/nginx/nginx.conf)
#   NGINX_USER  the workers' user (default nginx if it exists, else www-data)
#   IPV6        true, false or auto (listen on IPv6 too when the kernel has it; default auto)
#
# A site's content is a volume mounted at /www/<domain>. www.<domain> answers with a permanent redirect to
# https://<domain>: HAProxy terminates TLS in front.
set -eu
export LC_ALL=C

port=${HTTP_PORT:-8080}
conf=${NGINX_CONF:-/etc/nginx/nginx.conf}
user=${NGINX_USER:-}
if [ -z "$user" ]; then
	if id nginx >/dev/null 2>&1; then user=nginx; else user=www-data; fi
fi
ipv6=${IPV6:-auto}
case $ipv6 in
auto) if [ -e /proc/net/if_inet6 ]; then ipv6=true; else ipv6=false; fi ;;
true | false) ;;
*) echo "nginx-config: IPV6 must be true, false or auto, not \"$ipv6\"" >&2; exit 2 ;;
esac
case $port in
'' | *[!0-9]*) echo "nginx-config: HTTP_PORT \"$port\" is not a number" >&2; exit 2 ;;
esac

listen() {
	echo "        listen $port$1;"
	if [ "$ipv6" = true ]; then
		echo "        listen [::]:$port$1;"
	fi
}

sites() {
	for entry in ${DOMAINS:-}; do
		list=${entry#*:}
		old_ifs=$IFS
		IFS=,
		for d in $list; do
			d=${d%%/*}
			case $d in
			'' | *[!A-Za-z0-9.-]*) echo "nginx-config: \"$d\" is not a domain name" >&2; exit 2 ;;
			esac
			printf '%s\n' "$d"
		done
		IFS=$old_ifs
	done
}

sites=$(sites)
list=$(printf '%s\n' "$sites" | tr 'A-Z' 'a-z' | awk 'NF && !seen[$0]++')
tmp="$conf.tmp"
{
	cat <<CONF
# Written by bee2d's NginxStatic image from its environment at start; edits here are lost.
user $user;
worker_processes auto;
error_log stderr warn;
pid /run/nginx.pid;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    server_tokens off;

    log_format main '\$remote_addr - \$remote_user [\$time_local] "\$request" \$status \$body_bytes_sent '
                    '"\$http_referer" "\$http_user_agent" "\$http_x_forwarded_for"';

    # One access log per site; a host nobody configured does not get a file of its own.
    map \$host \$site_log {
        default access;
CONF
	for d in $list; do
		echo "        $d $d;"
	done
	cat <<CONF
    }

    server {
CONF
	listen ""
	cat <<CONF
        server_name ~^www\.(?<domain>.+)\$;
        access_log /var/log/nginx/\$site_log.log main;
        return 301 https://\$domain\$request_uri;
    }

    server {
CONF
	listen " default_server"
	cat <<CONF
        server_name _;
        root /www/\$host;
        # Behind HAProxy: redirects must not name this port, and stay on the scheme the client used.
        port_in_redirect off;
        absolute_redirect off;
        access_log /var/log/nginx/\$site_log.log main;

        location ~ /\.ht {
            deny all;
        }
    }
}
CONF
} >"$tmp"
mv -f "$tmp" "$conf"
