# Every target installs missing Debian packages first (scripts/install-deps).
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
SOURCES = $(shell git ls-files '*.cpp' '*.hpp' 2>/dev/null || find . -name '*.[ch]pp' -not -path './build*')

.PHONY: all deps configure build test install demo bench fuzz tsan format format-check clean

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

# libFuzzer targets (tests/fuzz) built with clang 16, ASan and UBSan in
# build-fuzz, each run FUZZ_SECONDS; any crash, leak, timeout or broken
# property fails (docs/RELIABILITY.md).
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake -S . -B build-fuzz -DORGSYNC_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-16 -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j$(JOBS) --target fuzz_targets
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz build-fuzz

# The tests that run threads, or the daemon with its threads (listener
# workers, scheduler, live sync, webhook delivery), built and run under
# ThreadSanitizer in build-tsan. The first race aborts the process that has
# it, the daemon included, so the test fails. tests/tsan.supp: third-party
# code only (docs/RELIABILITY.md).
TSAN_TARGETS = orgsyncd directory_tests scim_tests daemon_tests scim_server_tests service_tests ldap_tests
TSAN_TESTS ?= ConcurrencyTest|MirrorDigestTest\.ALarge|CommitQueueTest|CommitTogetherTest|MetricsTest|OutboxDeliveryTest|ScimServerTest|ServiceTest|LdapSync\.
tsan: deps
	cmake -S . -B build-tsan -DORGSYNC_SANITIZE=thread -DORGSYNC_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build build-tsan -j$(JOBS) --target $(TSAN_TARGETS)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp $(TSAN_OPTIONS)" \
	  ctest --test-dir build-tsan --output-on-failure --timeout 600 -j$(JOBS) -R '$(TSAN_TESTS)'

format: deps
	clang-format -i $(SOURCES)

format-check: deps
	clang-format --dry-run --Werror $(SOURCES)

clean:
	rm -rf build build-release build-asan build-fuzz build-tsan
