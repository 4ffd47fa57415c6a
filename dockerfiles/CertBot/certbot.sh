#!/bin/sh
# bee2d's CertBot image: gets and renews a certificate for each domain of DOMAINS and writes it, with its
# key, as <domain>-combined.pem for HAProxy. bee2d notices the new file (a reload rule on HAProxy) and
# signals HAProxy: no container holds the Docker socket.
#
#   DOMAINS         <container>:<d1>,<d2>/<port> ... (domains: all), or d1 d2; each d gets a certificate
#                   for d and www.d (WWW=false: d only)
#   EMAIL           the ACME account's address (required)
#   TEST            true: Let's Encrypt's staging CA (--test-cert)
#   PORT            the port the ACME challenge files are served on, which HAProxy sends
#                   /.well-known/acme-challenge/ to (default 8080)
#   ACME_SERVER     another ACME directory URL (--server); REQUESTS_CA_BUNDLE trusts its CA
#   RENEW_INTERVAL  minutes between checks when all went well (default 10080, a week, as in Bee2)
#   RETRY_SECONDS   seconds before the next try after a failure (default 300)
#
# certbot renews only what is due (--keep-until-expiring), so a check costs nothing most of the time. A
# combined file is replaced atomically (written beside it, then renamed) and only when its content changed.
#
#   certbot.sh                      serve the challenges and check every RENEW_INTERVAL (the default)
#   certbot.sh renew-now [ARG...]   one check now, extra certbot arguments appended (e.g. --force-renewal)
set -u
export LC_ALL=C
letsencrypt=${LETSENCRYPT_DIR:-/etc/letsencrypt}
live=$letsencrypt/live
webroot=${WEBROOT:-/var/lib/bee2d/acme}
port=${PORT:-8080}

log() {
	echo "bee2d-certbot: $*" >&2
}

# apexes prints each domain of DOMAINS once, without its /port suffix.
apexes() {
	for entry in ${DOMAINS:-}; do
		list=${entry#*:}
		old_ifs=$IFS
		IFS=,
		for d in $list; do
			printf '%s\n' "${d%%/*}"
		done
		IFS=$old_ifs
	done | awk 'NF && !seen[$0]++'
}

# combine writes <d>-combined.pem from the lineage's full chain and key, when it differs.
combine() {
	d=$1
	src=$live/$d
	[ -f "$src/fullchain.pem" ] && [ -f "$src/privkey.pem" ] || return 0
	tmp=$live/.$d-combined.pem.tmp
	if ! (umask 077 && cat "$src/fullchain.pem" "$src/privkey.pem" >"$tmp"); then
		rm -f "$tmp"
		return 1
	fi
	if cmp -s "$tmp" "$live/$d-combined.pem"; then
		rm -f "$tmp"
		return 0
	fi
	sync
	mv -f "$tmp" "$live/$d-combined.pem" && log "wrote $d-combined.pem"
}

# check runs certbot for every domain, then combines; it fails when any domain failed.
check() {
	ok=0
	for d in $(apexes); do
		set -- certonly --non-interactive --agree-tos --no-eff-email --email "$EMAIL" \
			--webroot -w "$webroot" --cert-name "$d" --keep-until-expiring -d "$d"
		case $d in
		www.*) ;;
		*) [ "${WWW:-true}" = false ] || set -- "$@" -d "www.$d" ;;
		esac
		[ "${TEST:-false}" = true ] && set -- "$@" --test-cert
		[ -n "${ACME_SERVER:-}" ] && set -- "$@" --server "$ACME_SERVER"
		if ! certbot "$@" $extra; then
			log "certbot failed for $d"
			ok=1
		fi
		combine "$d" || ok=1
	done
	return $ok
}

if [ -z "${EMAIL:-}" ]; then
	log "EMAIL is required (the ACME account's address)"
	exit 2
fi
mkdir -p "$webroot/.well-known/acme-challenge" "$live"

if [ "${1:-}" = renew-now ]; then
	shift
	extra="$*"
	check
	exit
fi
extra=""

# The challenge files certbot writes are served all the time, so the ACME path through HAProxy always
# reaches this container (a 404 while no challenge is pending).
python3 -m http.server "$port" --directory "$webroot" &
server=$!
sleeper=""
trap 'kill "$server" $sleeper 2>/dev/null; exit 0' TERM INT

while :; do
	if check; then
		wait_for=$((${RENEW_INTERVAL:-10080} * 60))
	else
		wait_for=${RETRY_SECONDS:-300}
		log "retrying in ${wait_for}s"
	fi
	kill -0 "$server" 2>/dev/null || { log "the challenge server stopped"; exit 1; }
	sleep "$wait_for" &
	sleeper=$!
	wait "$sleeper"
	sleeper=""
done
