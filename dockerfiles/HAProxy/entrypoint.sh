#!/bin/sh
# bee2d's HAProxy image: writes the configuration (haproxy-config.sh), then runs HAProxy in master-worker
# mode and stays its parent, so that a SIGHUP to the container (bee2d sends it when the certificates change)
# first writes the configuration again, with every certificate now present, checks it, and only then has
# HAProxy reload gracefully. A configuration that does not pass `haproxy -c` is not loaded: the running one
# stays. haproxy is found on PATH, so that the official image and a Debian one both work. Arguments (the
# official image's CMD) are ignored: the command line is this script's.
set -u
dir=${HAPROXY_DIR:-/usr/local/etc/haproxy}
export HAPROXY_DIR="$dir"
lib=$(dirname "$0")

log() {
	echo "bee2d-haproxy: $*" >&2
}

# HAProxy needs one certificate to listen on 443; a self-signed one stands in until CertBot has written real
# ones, and for names that have none. It is made per container when the image has openssl; otherwise the
# image's placeholder.pem is used. No client trusts either, so its key being public costs nothing.
placeholder() {
	[ -s "$dir/placeholder.pem" ] && return 0
	mkdir -p "$dir" || return 1
	if command -v openssl >/dev/null 2>&1 && tmp=$(mktemp -d); then
		if openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=placeholder.invalid \
			-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null; then
			(umask 077 && cat "$tmp/cert.pem" "$tmp/key.pem" >"$dir/.placeholder.pem.tmp") &&
				mv -f "$dir/.placeholder.pem.tmp" "$dir/placeholder.pem"
		fi
		rm -rf "$tmp"
	fi
	[ -s "$dir/placeholder.pem" ] || cp "$lib/placeholder.pem" "$dir/placeholder.pem"
}

# configure writes the configuration and checks it; when it fails the check, the last good one is put back.
configure() {
	for f in haproxy.cfg certificates.list; do
		[ -f "$dir/$f" ] && cp -p "$dir/$f" "$dir/.$f.good"
	done
	if sh "$lib/haproxy-config.sh" && haproxy -c -q -f "$dir/haproxy.cfg"; then
		return 0
	fi
	for f in haproxy.cfg certificates.list; do
		[ -f "$dir/.$f.good" ] && mv -f "$dir/.$f.good" "$dir/$f"
	done
	return 1
}

placeholder || exit 1
configure || { log "the configuration does not pass haproxy -c"; exit 1; }

haproxy -W -db -f "$dir/haproxy.cfg" &
pid=$!

reload() {
	if configure; then
		log "reloading with $(wc -l <"$dir/certificates.list") certificate(s)"
		kill -USR2 "$pid"
	else
		log "the new configuration does not pass haproxy -c; the running one stays"
	fi
}
trap reload HUP
# SIGUSR1 is a soft stop (the official image's stop signal): connections in flight finish.
trap 'kill -USR1 "$pid"' USR1
trap 'kill -TERM "$pid"' TERM INT

# wait returns early when a trapped signal arrives; HAProxy is then still running and is waited for again.
while :; do
	wait "$pid"
	status=$?
	kill -0 "$pid" 2>/dev/null || exit "$status"
done
