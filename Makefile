# bee2d: `make help` lists the targets.

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
SETTINGS  ?= examples/settings.yml
# Must match docker.prefix in $(SETTINGS): `down` removes only containers bee2d labelled with it.
EXAMPLE_PREFIX ?= bee2ex
TESTFLAGS ?=
# How long `make fuzz` runs each fuzz target: by default a number of runs each (about half a minute on two
# cores), since a duration can fail Go 1.26's fuzzer at its end with a bare "context deadline exceeded" and
# no failing input (golang/go#75804); FUZZTIME=5m runs every target for that long instead.
FUZZTIME  ?=
FUZZ_RUNS := FuzzParse=80000x FuzzRenderEnv=150000x FuzzParseLegacy=150000x FuzzScan=40000x FuzzVerify=15000x
# How long the fuzzer may shrink an input it found before it goes on.
FUZZMINIMIZETIME ?= 5s

# Each example program and the build dir its binary goes to (examples/dockerfiles/<Dir>/<name>).
EXAMPLES := static:Static front:Front

.DEFAULT_GOAL := help
.PHONY: help build examples dbsetup run apply test fuzz e2e soak vet staticcheck lint fmt bench compose clean down

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Static (CGO_ENABLED=0): the same binary runs on the servers as the backup helper, in a FROM scratch image.
build: ## build bin/bee2d (static), version from git describe
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/bee2d ./cmd/bee2d

# Static, reproducible binaries: the same source gives the same build context, so bee2d sees the same image.
examples: ## build the example programs into examples/dockerfiles/<Dir>
	@set -e; for e in $(EXAMPLES); do \
		name=$${e%%:*}; dir=$${e##*:}; \
		echo "CGO_ENABLED=0 $(GO) build -o examples/dockerfiles/$$dir/$$name ./examples/cmd/$$name"; \
		CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags=-s \
			-o examples/dockerfiles/$$dir/$$name ./examples/cmd/$$name; \
	done

# DBSetup's image is FROM scratch: its build context, dockerfiles/DBSetup, needs the static binary beside the
# Dockerfile before bee2d builds it (build_dir: DBSetup). The tests compile their own copy.
dbsetup: ## build DBSetup's static binary into its build context, dockerfiles/DBSetup
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags=-s -o dockerfiles/DBSetup/dbsetup ./dockerfiles/DBSetup

run: build examples ## run the daemon on examples/settings.yml against the local engine (Ctrl-C stops it)
	@echo "bee2d daemon: converging $(SETTINGS), then keeping it converged; Ctrl-C stops bee2d (containers stay)"
	@echo "open:    curl -i http://127.0.0.1:8480/      (front -> $(EXAMPLE_PREFIX)-app-static -> volume $(EXAMPLE_PREFIX)-site)"
	@echo "metrics: curl -s http://127.0.0.1:9380/metrics | grep ^bee2_"
	@echo "try:     docker rm -f $(EXAMPLE_PREFIX)-app-front   (bee2d brings it back), or edit $(SETTINGS)"
	@echo "then:    make down   (containers and network; the volume stays)"
	@echo
	bin/bee2d daemon -c $(SETTINGS) --log-format console

apply: build examples ## converge examples/settings.yml once and exit
	bin/bee2d apply -c $(SETTINGS)

# Integration tests need the Docker engine; with CI=true a missing engine fails them instead of skipping.
# The end-to-end test (e2e/) is part of it: it needs debootstrap (the first time, for its base image), root,
# and ports 80 and 443 free; -timeout covers that first run.
test: ## go test -race ./... (unit, golden, integration and end-to-end tests)
	$(GO) test -race -timeout 30m $(TESTFLAGS) ./...

# go test -fuzz runs one target of one package at a time: every func Fuzz* of the test files, in turn. A crasher
# is written to the package's testdata/fuzz/<FuzzName>/, which plain go test replays from then on.
fuzz: ## run each fuzz target for its share of runs (FUZZ_RUNS) or for FUZZTIME, one after another
	@set -e; for f in $$(grep -rl --include='*_test.go' --exclude-dir=testdata --exclude-dir=bin '^func Fuzz' . | sort); do \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
			t="$(FUZZTIME)"; \
			[ -n "$$t" ] || t=$$(printf '%s\n' $(FUZZ_RUNS) | sed -n "s/^$$name=//p"); \
			[ -n "$$t" ] || t=10000x; \
			echo "$(GO) test -run '^$$' -fuzz '^$$name\$$' -fuzztime $$t -fuzzminimizetime $(FUZZMINIMIZETIME) $$(dirname "$$f")"; \
			$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime "$$t" -fuzzminimizetime $(FUZZMINIMIZETIME) "$$(dirname "$$f")"; \
		done; \
	done

e2e: ## only the front-end stack end to end: HAProxy, CertBot and nginx with Pebble, renewal reloaded
	$(GO) test -count=1 -timeout 30m -run TestFrontEnd -v ./e2e/

# The same test as in `make test`, long and with 100 applications: SOAK=30m or SOAK_APPS=200 for more.
# BEE2D_SOAK_REPORT=FILE keeps the summary line, BEE2D_SOAK_LOG=FILE the daemon's log.
SOAK      ?= 10m
SOAK_APPS ?= 100
soak: ## the daemon on 100 apps for 10m (SOAK_APPS, SOAK) while containers are killed and removed at random
	BEE2D_SOAK=$(SOAK) BEE2D_SOAK_APPS=$(SOAK_APPS) $(GO) test -count=1 -timeout 60m -run '^TestDaemonSoak$$' -v ./cmd/bee2d/

vet: ## go vet ./...
	$(GO) vet ./...

# staticcheck is pinned, so that a new release's checks cannot fail a tree that passed. It is installed from the
# Go module proxy into GOBIN (else GOPATH/bin) only when missing or another version. 0.8.2 is staticcheck
# 2026.2.2, the newest release, made for Go 1.26.
STATICCHECK_VERSION := 0.8.2
STATICCHECK = $(or $(shell $(GO) env GOBIN),$(firstword $(subst :, ,$(shell $(GO) env GOPATH)))/bin)/staticcheck

staticcheck: ## staticcheck ./..., installing the pinned version (STATICCHECK_VERSION) when missing or another
	@case "$$($(STATICCHECK) -version 2>/dev/null)" in \
	*"($(STATICCHECK_VERSION))") ;; \
	*) echo "$(GO) install honnef.co/go/tools/cmd/staticcheck@v$(STATICCHECK_VERSION)"; \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@v$(STATICCHECK_VERSION) ;; \
	esac
	$(STATICCHECK) ./...

lint: vet staticcheck ## go vet and staticcheck

fmt: ## fail when a Go file is not gofmt-formatted (testdata excluded)
	@files=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path './bench/bin/*' \
		-exec gofmt -l {} +); \
	if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi

bench: build examples compose ## go test -bench, every bench/*.sh, then bench/apply (APPLYFLAGS='-n 20 -rounds 3')
	$(GO) test -run '^$$' -bench . -benchmem ./...
	@set -e; for s in bench/*.sh; do \
		[ -e "$$s" ] || continue; \
		echo "== $$s"; \
		PATH="$(CURDIR)/bench/bin:$(CURDIR)/bin:$$PATH" bash "$$s"; \
	done
	$(GO) run ./bench/apply -bee2d bin/bee2d -compose bench/bin/docker-compose $(APPLYFLAGS)

compose: ## build Docker Compose v2 into bench/bin/docker-compose (skipped when present)
	bench/tools/compose.sh

clean: ## remove bin/, the example binaries and DBSetup's (containers and volumes are left alone)
	rm -rf bin
	rm -fv dockerfiles/DBSetup/dbsetup
	@for e in $(EXAMPLES); do rm -fv examples/dockerfiles/$${e##*:}/$${e%%:*}; done

# Only what bee2d labelled as its own with this prefix; volumes are never removed.
down: ## remove the example's bee2d containers and network (volumes kept)
	@ids=$$(docker ps -aq --filter label=io.bee2d.owner=bee2d --filter label=io.bee2d.prefix=$(EXAMPLE_PREFIX)); \
	if [ -n "$$ids" ]; then docker rm -f $$ids; else echo "no $(EXAMPLE_PREFIX) containers"; fi
	@nets=$$(docker network ls -q --filter label=io.bee2d.owner=bee2d --filter label=io.bee2d.prefix=$(EXAMPLE_PREFIX)); \
	if [ -n "$$nets" ]; then docker network rm $$nets; fi
