# edgesync — the two commands are `make dev` and `make test` (see README.md).
# Everything else here is how they get there: idempotent tool installs, the offline wasm
# build, and the checks. Run `make help` for the list.

SHELL := /bin/bash
# No `-u`: wrangler runs `make -s wasm` with a socket on stdin, which makes bash read
# /etc/bash.bashrc, and Debian's bashrc reads an unset PS1.
.SHELLFLAGS := -e -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
NODE_BIN := $(ROOT)/node_modules/.bin

# Pinned tools. wasm-bindgen-cli must equal the wasm-bindgen in Cargo.lock exactly.
WORKER_BUILD_VERSION := 0.8.7
WASM_BINDGEN_VERSION = $(shell awk '/^name = "wasm-bindgen"$$/ {getline; gsub(/version = |"/, ""); print; exit}' $(ROOT)/Cargo.lock)

# Offline, quiet toolchain: worker-build would otherwise download wasm-bindgen, esbuild and
# wasm-opt; wrangler would phone home for metrics and the request.cf object.
export WASM_BINDGEN_BIN := $(CARGO_BIN)/wasm-bindgen
export ESBUILD_BIN := $(NODE_BIN)/esbuild
export WASM_OPT_BIN := $(NODE_BIN)/wasm-opt
export XDG_CONFIG_HOME := $(ROOT)/.xdg
export XDG_CACHE_HOME := $(ROOT)/.cache
export WRANGLER_SEND_METRICS := false
export WRANGLER_SEND_ERROR_REPORTS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false
# The banner is what makes wrangler ask the npm registry for a newer version.
export WRANGLER_HIDE_BANNER := true
export PATH := $(CARGO_BIN):$(PATH)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
WASM := $(ROOT)/worker/build/index_bg.wasm
WASM_SOURCES := $(shell find $(ROOT)/core/src $(ROOT)/worker/src -name '*.rs') \
	$(ROOT)/core/Cargo.toml $(ROOT)/worker/Cargo.toml $(ROOT)/Cargo.lock
PAGE := $(ROOT)/web/build/index.html
PAGE_SOURCES := $(wildcard $(ROOT)/web/src/*) $(ROOT)/package-lock.json
DEV_PORT ?= 8787
# The bundle budget: 600 KB compressed (the free plan allows 3 MB; a small bundle starts fast).
BUNDLE_LIMIT_BYTES := 614400

.PHONY: help dev demo test install tools apt-tools rust-tools node-tools wasm lint unit e2e screenshot deploy-check bench bench-cpu perf-tool bench-migrator bench-core sdk-suite deploy clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/$$(DEV_PORT)/$(DEV_PORT)/g' | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

dev: tools wasm ## run the worker locally in workerd on 127.0.0.1:$(DEV_PORT)
	@[ -f .dev.vars ] || echo "note: no .dev.vars (see .dev.vars.example): running on the durable copy (a Durable Object kept in .wrangler/state), no exchange keys"
	$(NODE_BIN)/wrangler dev --ip 127.0.0.1 --port $(DEV_PORT) --inspector-ip 127.0.0.1 --test-scheduled

demo: tools wasm ## the page with a moving demo market: no Redis, no keys, no network (127.0.0.1:$(DEV_PORT))
	cargo build -p edgesync-e2e --bin mexc-standin --bin edgesync-demo --quiet
	cargo build -p edgesync-gateway --bin edgesync-gateway --quiet
	$(ROOT)/target/debug/edgesync-demo --port $(DEV_PORT)

test: tools lint unit wasm e2e deploy-check ## install what is missing, then fmt, clippy, unit, e2e and bundle checks
	@echo "make test: all checks passed"

# ---- tools: each step checks before it installs, so a second run installs nothing ----

tools: apt-tools rust-tools node-tools

apt-tools:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { \
		echo "installing redis-server (apt)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	@[ -x /usr/bin/chromium ] || { \
		echo "installing chromium (apt, for the page's browser tests)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

rust-tools:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@[ "$$($(CARGO_BIN)/worker-build --version 2>/dev/null)" = "$(WORKER_BUILD_VERSION)" ] || \
		cargo install worker-build --version $(WORKER_BUILD_VERSION) --locked
	@[ "$$($(CARGO_BIN)/wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $(WASM_BINDGEN_VERSION)" ] || { \
		echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (must match Cargo.lock)"; \
		cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --locked 2>/dev/null || \
		cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; }

node-tools: node_modules/.edgesync-installed

node_modules/.edgesync-installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# ---- build ----

wasm: $(WASM) ## build the worker to wasm, its page included (skipped when nothing changed)

# The page (`GET /`), bundled by the npm-pinned esbuild; the worker compiles it in.
$(PAGE): $(PAGE_SOURCES) | node-tools
	@mkdir -p $(ROOT)/web/build
	$(ESBUILD_BIN) $(ROOT)/web/src/app.js --bundle --minify --format=esm --outdir=$(ROOT)/web/build --log-level=warning
	cp $(ROOT)/web/src/index.html $@
	@echo "page: $$(cat $(ROOT)/web/build/* | gzip -9 | wc -c) bytes gzip -9"

$(WASM): $(WASM_SOURCES) $(PAGE) | rust-tools node-tools
	cd worker && worker-build --release > $(ROOT)/target/worker-build.log 2>&1 || { tail -40 $(ROOT)/target/worker-build.log; exit 1; }
	@echo "wasm: $$(stat -c %s $@) bytes, gzip -9: $$(gzip -9 -c $@ | wc -c) bytes"

# ---- checks ----

lint: $(PAGE) ## cargo fmt --check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings

unit: $(PAGE) ## native unit and integration tests of every crate except the e2e suite
	cargo test --workspace --exclude edgesync-e2e --quiet
	cargo test -p edgesync-e2e --lib --bins --quiet

e2e: tools wasm ## end-to-end tests: redis-server, gateway, MEXC stand-in, workerd
	cargo test -p edgesync-e2e --tests --no-run --quiet
	cargo build -p edgesync-migrator --bin migrator --quiet
	cargo build -p edgesync-gateway --bin edgesync-gateway --quiet
	@# Where possible, run in a network namespace that has only loopback, which proves no
	@# test (nor wrangler) talks to anything beyond 127.0.0.1.
	@if unshare --net true 2>/dev/null; then \
		echo "e2e: running in a loopback-only network namespace"; \
		unshare --net bash -c 'ip link set lo up && cargo test -p edgesync-e2e --tests --quiet --offline'; \
	else \
		echo "e2e: unshare unavailable; running in the host network (servers bind 127.0.0.1 only)"; \
		cargo test -p edgesync-e2e --tests --quiet; \
	fi

screenshot: tools wasm ## refresh docs/page.png, the README's screenshot, from the page suite
	cargo build -p edgesync-gateway --bin edgesync-gateway --quiet
	EDGESYNC_SCREENSHOT=$(ROOT)/docs/page.png cargo test -p edgesync-e2e --test page --quiet

deploy-check: wasm ## bundle as `wrangler deploy` would, and fail above the 600 KB budget
	@out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
	$(NODE_BIN)/wrangler deploy --dry-run --outdir "$$out" > target/deploy-dry-run.log 2>&1 || { cat target/deploy-dry-run.log; exit 1; }; \
	size=$$(tar -C "$$out" -cf - . | gzip -9 | wc -c); \
	echo "bundle: $$size bytes compressed (limit $(BUNDLE_LIMIT_BYTES))"; \
	[ "$$size" -le $(BUNDLE_LIMIT_BYTES) ] || { echo "bundle exceeds its budget of $(BUNDLE_LIMIT_BYTES) bytes compressed (the free plan allows 3 MB)"; exit 1; }

bench: tools wasm perf-tool ## HTTP latency/throughput vs. a hello-world and a JS @upstash/redis worker (wrk), then the isolate's CPU per cron invocation (perf, V8 profiler)
	@command -v wrk >/dev/null || { echo "installing wrk (apt)"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	cargo build --release -p edgesync-gateway --bin edgesync-gateway --quiet
	cargo bench -p edgesync-e2e --bench http
	cargo bench -p edgesync-e2e --bench cpu

bench-cpu: tools wasm perf-tool ## only the CPU part of `make bench`: isolate CPU per cron invocation for 1/5/20 symbols, copy on/off
	cargo build --release -p edgesync-gateway --bin edgesync-gateway --quiet
	cargo bench -p edgesync-e2e --bench cpu

# Linux perf samples workerd's CPU for the CPU bench (Debian: linux-perf).
perf-tool:
	@command -v perf >/dev/null || { echo "installing perf (apt: linux-perf)"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq linux-perf >/dev/null; }
	@command -v perf >/dev/null || { echo "perf is missing: install linux-perf"; exit 1; }

bench-migrator: tools ## migrator plan/apply/verify/rollback on 1M keys (keys/s, RSS) vs. redis-benchmark, a naive loop and TradingBoost's script
	@python3 -c "import venv, ensurepip" 2>/dev/null || { echo "installing python3-venv (apt)"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3 python3-venv >/dev/null; }
	cargo build --release -p edgesync-migrator --bin migrator --quiet
	cargo build --release -p edgesync-gateway --bin edgesync-gateway --quiet
	cargo bench -p edgesync-e2e --bench migrator

sdk-suite: ## @upstash/redis's own Subscriber tests (or the files given as FILES=…) against the gateway; fetches redis-js once (SDK_SUITE_SOURCE=clone offline)
	cargo build -p edgesync-gateway --bin edgesync-gateway --quiet
	tests/gateway/sdk-suite.sh $(FILES)

bench-core: ## criterion benchmarks of key building, the codec and one cron invocation natively (numbers in docs/benchmarks.md)
	cargo bench -p edgesync-core --bench core

install: ## put `migrator` and `edgesync-gateway` on the PATH (cargo install into ~/.cargo/bin)
	cargo install --locked --path migrator
	cargo install --locked --path gateway

deploy: tools wasm ## deploy to Cloudflare (needs `wrangler login` and the secrets, see README)
	$(NODE_BIN)/wrangler deploy

clean: ## remove build outputs (keeps installed tools)
	cargo clean
	rm -rf worker/build web/build .wrangler .xdg .cache
