# SPDX-License-Identifier: LGPL-2.1-or-later
# Convenience wrapper around meson. `make` builds, `make check` builds and runs
# every test, `make demo` shows the main job end to end.
BUILD ?= build
MESON_OPTS ?=

.PHONY: all deps check check-asan demo install clean fuzz tsan bench
FUZZ_SECONDS ?= 60

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@sh scripts/install-deps.sh

$(BUILD)/build.ninja:
	@sh scripts/install-deps.sh
	meson setup $(BUILD) $(MESON_OPTS)

check: deps all
	meson test -C $(BUILD) --print-errorlogs --num-processes 2 $(TESTS)

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
check-asan: deps
	$(MAKE) check BUILD=build-asan MESON_OPTS="-Db_sanitize=address,undefined -Db_lundef=false"

demo: deps all
	sh scripts/demo.sh $(BUILD)

# libFuzzer with ASan+UBSan on the QED driver for FUZZ_SECONDS.
fuzz: deps
	sh scripts/fuzz.sh $(FUZZ_SECONDS)

# The thread tests under ThreadSanitizer; any warning fails.
tsan: deps
	sh scripts/tsan.sh

# The benchmark table of docs/performance.md: BENCH_BUILD is a release build
# of its own; WORKLOADS (e.g. "W1 W8") selects, REPS and QUICK=1 as in
# bench/run.sh.
BENCH_BUILD ?= build-bench
WORKLOADS ?=
bench: deps
	@test -f $(BENCH_BUILD)/build.ninja || meson setup $(BENCH_BUILD) -Dbuildtype=release
	ninja -C $(BENCH_BUILD)
	bench/run.sh -B $(BENCH_BUILD) $(WORKLOADS)

install: all
	meson install -C $(BUILD)

clean:
	rm -rf build build-asan build-fuzz build-tsan build-bench
