# bridgehead build: one static library of every module, the binary, and the
# test tiers.  Sources are found by wildcard, so a new module needs no edit
# here: src/*/*.c (except *_test.c) go into the library, each *_test.c
# becomes a cmocka unit test linked against it.

PKGS      := openssl libevent libevent_pthreads inih libunbound cmocka
DEB_PKGS  := libssl-dev libevent-dev libinih-dev libunbound-dev libcmocka-dev pkg-config
PYTHON    := /usr/bin/python3

VERSION  := 0.1.0
BUILD    ?= build
CC       ?= cc
CFLAGS_WARN := -std=c17 -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wpointer-arith -Wcast-qual -Werror
CFLAGS_DEF  := -D_GNU_SOURCE -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED \
	-DBRIDGEHEAD_VERSION='"$(VERSION)"'
OPT      ?= -O2 -g
SANITIZE ?=

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs openssl libevent libevent_pthreads inih libunbound 2>/dev/null) -lpthread
TEST_LIBS  = $(shell pkg-config --libs cmocka 2>/dev/null)

CFLAGS_ALL = $(CFLAGS_WARN) $(CFLAGS_DEF) $(OPT) $(SANITIZE) -Isrc $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SANITIZE) $(LDFLAGS)

LIB_SRCS  := $(filter-out %_test.c,$(wildcard src/*/*.c))
TEST_SRCS := $(wildcard src/*/*_test.c)
LIB_OBJS  := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
TEST_BINS := $(TEST_SRCS:src/%_test.c=$(BUILD)/tests/%_test)
BIN       := $(BUILD)/bridgehead

.PHONY: all deps run test unit integration bad-configs asan bench clean fuzz install

all: $(BUILD)/.deps-ok $(BIN)

# Dependencies: install them when root, otherwise say exactly what to run.
$(BUILD)/.deps-ok:
	@mkdir -p $(BUILD)
	@if ! pkg-config --exists $(PKGS) 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing build dependencies: $(DEB_PKGS)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y $(DEB_PKGS) || \
	    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(DEB_PKGS); } || exit 1; \
	  else \
	    echo "missing build dependencies; run:"; \
	    echo "  sudo apt-get install -y $(DEB_PKGS)"; exit 1; \
	  fi; \
	fi
	@touch $@

$(BUILD)/obj/%.o: src/%.c $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libbridgehead.a: $(filter-out $(BUILD)/obj/main.o,$(LIB_OBJS))
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/obj/main.o $(BUILD)/libbridgehead.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(BUILD)/obj/main.o: src/main.c $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# A unit test links only its own module's objects and util/, so one
# module's tests never wait on another module.
module_objs = $(filter $(BUILD)/obj/$(1)/% $(BUILD)/obj/util/%,$(LIB_OBJS))
.SECONDEXPANSION:
$(BUILD)/tests/%_test: src/%_test.c $$(call module_objs,$$(firstword $$(subst /, ,$$*)))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(PKG_LIBS) $(TEST_LIBS) $(LDFLAGS_ALL)

-include $(LIB_OBJS:.o=.d) $(BUILD)/obj/main.d

# The quick start: a ready configuration in run/, a self-signed certificate
# the first time, the server in the foreground on 127.0.0.1:2525.
run: all
	@sh run/start.sh $(BIN)

# Every test tier.  Integration tests use Debian's python3 (pytest, aiosmtpd).
test: all $(TEST_BINS)
	@sh tests/run-unit.sh $(TEST_BINS)
	@sh tests/bad-configs/run.sh $(BIN)
	@BRIDGEHEAD_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

unit: $(TEST_BINS)
	@sh tests/run-unit.sh $(TEST_BINS)

# The same tests under AddressSanitizer and UBSan, in a separate build tree.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

# libFuzzer harnesses of every parser, each for FUZZ_SECONDS (clang-14).
FUZZ_SECONDS ?= 60
fuzz:
	sh tests/fuzz/build.sh run $(FUZZ_SECONDS)

bench: all
	@$(MAKE) -C bench BRIDGEHEAD_BIN=$(abspath $(BIN))

clean:
	rm -rf build build-asan
