#!/usr/bin/env bash
# Builds Docker Compose v2 from the Go module proxy into bench/bin/docker-compose, the peer that the
# benchmarks measure bee2d against. `go install` refuses compose (its go.mod has exclude directives), so the
# module is downloaded and built inside its own directory, where those directives apply.
#
# Usage: bench/tools/compose.sh [version]     (default v2.40.3; COMPOSE_VERSION works too)
# Skips the build when bench/bin/docker-compose already reports that version.
set -euo pipefail

version="${1:-${COMPOSE_VERSION:-v2.40.3}}"
module=github.com/docker/compose/v2
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$root/bench/bin/docker-compose"

export PATH="$PATH:/usr/local/go/bin"
# auto: the local Go when it is new enough for compose's go.mod, else the toolchain it names (from the proxy).
export GOTOOLCHAIN="${GOTOOLCHAIN_COMPOSE:-auto}"
export GO111MODULE=on CGO_ENABLED=0

if [[ -x "$out" ]] && "$out" version --short 2>/dev/null | grep -qx "${version#v}"; then
	echo "compose.sh: $out is already $version"
	exit 0
fi

# Outside any module, so the main module's go.mod plays no part.
dir="$(cd / && go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$dir" || ! -d "$dir" ]]; then
	echo "compose.sh: go mod download $module@$version gave no directory" >&2
	exit 1
fi

mkdir -p "$(dirname "$out")"
start=$SECONDS
echo "compose.sh: building $module@$version from $dir"
# The module cache is read-only, so -mod=mod (which may rewrite go.mod) is only the fallback.
build() {
	(cd "$dir" && go build "$@" -trimpath -ldflags "-s -w -X $module/internal.Version=$version" \
		-o "$out.tmp" ./cmd)
}
if ! build; then
	echo "compose.sh: retrying with -mod=mod" >&2
	build -mod=mod
fi
mv -f "$out.tmp" "$out"
echo "compose.sh: built $out ($("$out" version --short)) in $((SECONDS - start))s"
