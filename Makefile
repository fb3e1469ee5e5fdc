# Every target installs missing Debian packages first (scripts/install-deps).
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
SOURCES = $(shell git ls-files '*.cpp' '*.hpp' 2>/dev/null || find . -name '*.[ch]pp' -not -path './build*')

.PHONY: all deps configure build test install demo bench format format-check clean

all: build

deps:
	@scripts/install-deps

configure: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure --timeout 300 -j$(JOBS)

# orgsyncd to $(PREFIX)/sbin, the systemd unit to $(PREFIX)/lib/systemd/system,
# example configuration to $(PREFIX)/share/doc/orgsync/examples; DESTDIR for
# packaging (make install PREFIX=/usr DESTDIR=/tmp/pkg).
install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

demo: build
	@scripts/demo $(BUILD)

# BENCH_ARGS go to authorize_bench, SYNC_BENCH_ARGS to sync_bench, LDAP_BENCH_ARGS to
# ldap_bench, SCIM_BENCH_ARGS to scim_bench (docs/BENCHMARKS.md), LOAD_BENCH_ARGS to
# load_bench (docs/RELIABILITY.md).
bench: deps
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DORGSYNC_BUILD_TESTS=OFF
	cmake --build build-release -j$(JOBS) --target authorize_bench sync_bench ldap_bench scim_bench load_bench
	build-release/bench/authorize_bench $(BENCH_ARGS)
	build-release/bench/sync_bench $(SYNC_BENCH_ARGS)
	build-release/bench/ldap_bench $(LDAP_BENCH_ARGS)
	build-release/bench/scim_bench $(SCIM_BENCH_ARGS)
	build-release/bench/load_bench $(LOAD_BENCH_ARGS)

format: deps
	clang-format -i $(SOURCES)

format-check: deps
	clang-format --dry-run --Werror $(SOURCES)

clean:
	rm -rf build build-release build-asan
