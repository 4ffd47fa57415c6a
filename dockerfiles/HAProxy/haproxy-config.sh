#!/bin/sh
# Writes HAProxy's configuration from the environment bee2d gives the container, for bee2d's HAProxy image
# (run by entrypoint.sh at start and on SIGHUP; the tests in dockerfiles/ run it on the host).
#
#   DOMAINS       <container>:<d1>,<d2>/<port> ... as `domains: all` renders it (a domain without /port: 8080)
#   CERTBOT_HOST  where the ACME challenge path goes (default certbot: bee2d gives each application its
#   CERTBOT_PORT  name as a network alias) and its port (default 8080)
#   CERT_DIR      the combined certificates, <domain>-combined.pem (default /etc/letsencrypt/live)
#   HAPROXY_DIR   where haproxy.cfg, certificates.list and placeholder.pem are (default /usr/local/etc/haproxy)
#   IPV6          true, false or auto (listen on IPv6 too when the kernel has it; default auto)
#
# Port 80 sends /.well-known/acme-challenge/ to CertBot and redirects the rest to https. Port 443 picks the
# certificate by SNI among every combined certificate present (the placeholder when none fits) and routes d
# and www.d to the container that owns d. Names are resolved by Docker's DNS when used, not at start, so the
# containers can start in any order.
#
# An application's name can stand for more than one container: in a start-first deploy the new container
# answers to it (a network alias) beside the old one until the old one is stopped and removed. Each site is
# therefore a server-template, one server per address the name resolves to, asked again every second; a
# request that finds its container gone (refused, or closed before any answer) is sent to another one.
set -eu
export LC_ALL=C

domains=${DOMAINS:-}
certbot_host=${CERTBOT_HOST:-certbot}
certbot_port=${CERTBOT_PORT:-8080}
cert_dir=${CERT_DIR:-/etc/letsencrypt/live}
dir=${HAPROXY_DIR:-/usr/local/etc/haproxy}
ipv6=${IPV6:-auto}
# Servers per site: the containers that may answer to one name at once (two in a start-first deploy).
slots=4
case $ipv6 in
auto) if [ -e /proc/net/if_inet6 ]; then ipv6=true; else ipv6=false; fi ;;
true | false) ;;
*) echo "haproxy-config: IPV6 must be true, false or auto, not \"$ipv6\"" >&2; exit 2 ;;
esac

fail() {
	echo "haproxy-config: $*" >&2
	exit 2
}

# routes prints "<backend> <host> <port> <domain>" for each domain of DOMAINS, in order.
routes() {
	for entry in $domains; do
		case $entry in
		?*:?*) ;;
		*) fail "DOMAINS entry \"$entry\" is not <container>:<domain>[,<domain>...]" ;;
		esac
		host=${entry%%:*}
		list=${entry#*:}
		old_ifs=$IFS
		IFS=,
		for d in $list; do
			port=8080
			case $d in
			*/*) port=${d#*/} d=${d%%/*} ;;
			esac
			case $port in
			'' | *[!0-9]*) fail "DOMAINS entry \"$entry\": port \"$port\" is not a number" ;;
			esac
			case $d in
			'' | *[!A-Za-z0-9.-]*) fail "DOMAINS entry \"$entry\": \"$d\" is not a domain name" ;;
			esac
			d=$(printf '%s' "$d" | tr 'A-Z' 'a-z')
			echo "site_${host}_$port $host $port $d"
		done
		IFS=$old_ifs
	done
}

# bind prints the bind lines of one port, IPv4 and, when wanted, IPv6.
bind() {
	echo "    bind 0.0.0.0:$1$2"
	if [ "$ipv6" = true ]; then
		echo "    bind :::$1 v6only$2"
	fi
}

table=$(routes)
tmp_cfg="$dir/.haproxy.cfg.tmp"
tmp_list="$dir/.certificates.list.tmp"
mkdir -p "$dir"

# The certificates present now, by name; entrypoint.sh writes this again before each reload.
for f in "$cert_dir"/*-combined.pem; do
	[ -f "$f" ] && echo "$f"
done >"$tmp_list"

{
	cat <<CFG
# Written by bee2d's HAProxy image from DOMAINS at start and on each SIGHUP; edits here are lost.
global
    log stdout format raw local0 info
    user haproxy
    group haproxy
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
    tune.ssl.default-dh-param 2048

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    # Every container has an IPv4 address on its network, not always an IPv6 one, and applications listen
    # on 0.0.0.0 more often than on ::; asking for A records first also saves a query per name each second.
    default-server init-addr libc,none resolvers docker resolve-prefer ipv4

# Docker's embedded DNS: containers are found by name whenever they (re)start, with their new address.
# Servers ask again every second (timeout resolve; hold valid where a version or do-resolve reads that); an
# address missing from an answer is dropped at once (hold obsolete 0s), so a stopped container leaves within
# a second even if its check has not failed yet. A name briefly unknown (NXDOMAIN) keeps its addresses 5s.
resolvers docker
    nameserver docker 127.0.0.11:53
    accepted_payload_size 8192
    resolve_retries 3
    timeout resolve 1s
    timeout retry 1s
    hold valid 1s
    hold obsolete 0s
    hold nx 5s

frontend http
CFG
	bind 80 ""
	cat <<CFG
    acl acme path_beg /.well-known/acme-challenge/
    http-request redirect scheme https code 301 unless acme
    use_backend certbot if acme

frontend https
CFG
	bind 443 " ssl crt $dir/placeholder.pem crt-list $dir/certificates.list alpn h2,http/1.1"
	echo "    http-request set-header X-Forwarded-Proto https"
	echo "    http-request set-var(txn.host) req.hdr(host),field(1,:),lower"
	# One rule per backend, in the order of DOMAINS: d and www.d of each of its domains.
	printf '%s\n' "$table" | awk 'NF == 4 {
		if (!($1 in hosts)) { order[++n] = $1 }
		hosts[$1] = hosts[$1] " " $4 " www." $4
	}
	END {
		for (i = 1; i <= n; i++) printf "    use_backend %s if { var(txn.host) -m str%s }\n", order[i], hosts[order[i]]
	}'
	cat <<CFG
    default_backend no_site

backend certbot
    server certbot $certbot_host:$certbot_port

backend no_site
    http-request return status 404 content-type text/plain string "No site here."
CFG
	# Each site: up to $slots servers, one per address of its container's name (old and new during a
	# start-first deploy, with room to spare); a slot without an address is in maintenance and costs nothing.
	# A slot starts with the address libc gives (init-addr), so a reload serves at once; the first answer
	# of the resolvers spreads the slots over distinct addresses.
	#
	# A stopping container closes its listener first (connection refused) and its idle keep-alive
	# connections (a request sent on one just then gets nothing back). Both are retried on another server
	# (redispatch on every retry): a refused connection always, since nothing was sent; an empty response
	# only for methods a client may repeat, as the others may have been acted on. The TCP check every
	# second takes a server out after two failures in a row and back at its first success: one failure
	# is also what a new container's first, slow connection can look like, and taking both servers out
	# at once would leave none (bee2d's start-first deploy takes the old container's name away two
	# seconds before it stops it, so by then its address has left the DNS). Until then a container
	# that has exited leaves an address nothing answers, and a connection to it waits for timeout connect
	# before it goes elsewhere: 2s rather than 5s, yet past the retransmission at 1s of a lost SYN or ARP
	# request (a new container's address is in the DNS a moment before it answers). Keep-alive to the
	# servers stays (http-reuse safe, the default: a client's first request never rides an idle
	# connection), which spares a connection per request and the TIME_WAIT sockets of closing each one.
	printf '%s\n' "$table" | awk -v slots="$slots" 'NF == 4 && !seen[$1]++ {
		printf "\nbackend %s\n", $1
		print "    timeout connect 2s"
		print "    retries 3"
		print "    option redispatch 1"
		print "    retry-on conn-failure empty-response"
		print "    http-request disable-l7-retry unless METH_GET || METH_OPTIONS"
		printf "    server-template app %d %s:%s check inter 1s fall 2 rise 1\n", slots, $2, $3
	}'
} >"$tmp_cfg"

mv -f "$tmp_list" "$dir/certificates.list"
mv -f "$tmp_cfg" "$dir/haproxy.cfg"
