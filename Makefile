# Thin wrapper around CMake. Every target installs what is missing first, so
# `make demo` and `make test` are all a fresh Debian 12 machine needs.
JOBS  ?= $(shell nproc)
CMAKE ?= cmake

.PHONY: all deps build build-san build-fuzz demo test test-normal test-san fuzz fuzz-smoke bench clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@$(CMAKE) --build build -j $(JOBS)

build-san: deps
	@$(CMAKE) -S . -B build-san -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAECAP_SANITIZE=ON >/dev/null
	@$(CMAKE) --build build-san -j $(JOBS)

build-fuzz: deps
	@CC=clang $(CMAKE) -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAECAP_FUZZ=ON >/dev/null
	@$(CMAKE) --build build-fuzz -j $(JOBS)

demo: build
	@bash scripts/demo.sh build/saecap

test-normal: build
	@cd build && ctest --output-on-failure -j $(JOBS)

test-san: build-san
	@cd build-san && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

fuzz-smoke: build-fuzz
	@bash scripts/fuzz.sh build-fuzz 5

# The whole suite twice (normal and ASan+UBSan builds), then each fuzzer briefly.
test: test-normal test-san fuzz-smoke

fuzz: build-fuzz
	@bash scripts/fuzz.sh build-fuzz 60

bench: build
	@bash scripts/bench.sh build

clean:
	rm -rf build build-san build-fuzz
