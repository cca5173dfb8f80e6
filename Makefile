# Makefile -- build, test, bench, demo and install zos (GNU make).
#
#   make            build build/zos-proxy, build/zos and build/libzos.a
#   make deps       install the Debian packages the build and the tests need
#   make test       unit, conformance and integration suites (installs deps first);
#                   LOAD=2 make test runs them while 2 busy processes load the CPU
#   make demo       a simulated node and a TLS redis behind the proxy, driven by the CLI
#   make bench      benchmarks of bench/ (figures and ratios, never pass/fail)
#   make fuzz       libFuzzer targets of tests/fuzz (clang); FUZZ_TIME=N runs each N s
#   make install    PREFIX=/usr/local DESTDIR=  (binaries, systemd unit, bash completion)
#   SANITIZER=address,undefined   build everything with sanitizers;  V=1  full command lines

PREFIX  ?= /usr/local
DESTDIR ?=
UNITDIR       ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR   ?= $(PREFIX)/lib/sysusers.d
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
BUILD   ?= build
CC      ?= cc
PKGS    := libevent libevent_openssl hiredis libcjson libssh openssl inih

DEB_PKGS := build-essential pkg-config libevent-dev libhiredis-dev libcjson-dev libssh-dev \
            libssl-dev libinih-dev redis-server redis-tools openssh-server libcmocka-dev
DEB_TEST_PKGS := nutcracker clang python3-redis python3-pytest socat \
                 ruby-redis php-cli php-redis libredis-perl lua5.1 lua-redis \
                 golang-go golang-github-gomodule-redigo-dev systemd strace

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Skip the pkg-config probe for targets that must work before the libraries exist.
NODEPS_GOALS := deps clean format format-check help test demo bench
ifneq ($(filter-out $(NODEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ifeq ($(PKG_LIBS),)
$(error missing libraries: pkg-config cannot find some of '$(PKGS)'; run 'make deps' (Debian) first)
endif
endif

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
           -Wno-unused-parameter -Werror
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Iinclude $(PKG_CFLAGS) -MMD -MP \
              -DZOS_VERSION='"$(shell cat VERSION 2>/dev/null || echo 0.0.0)"'
LDLIBS  := $(PKG_LIBS) -lpthread -lm
ifneq ($(SANITIZER),)
ALL_CFLAGS += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS    += -fsanitize=$(SANITIZER)
endif

# libzos is every module whose header is public (include/zos/X.h, proxy/X.c):
# what the CLI, the proxy and the simulated node share.  A module whose header
# sits beside its .c in proxy/ is the proxy's own; those form libzosproxy.a.
LIB_SRC  := $(filter $(patsubst include/zos/%.h,proxy/%.c,$(wildcard include/zos/*.h)),$(wildcard proxy/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libzos.a
PROXY_SRC := $(filter-out proxy/main.c $(LIB_SRC),$(wildcard proxy/*.c))
PROXY_LIB := $(BUILD)/libzosproxy.a
PROXY    := $(BUILD)/zos-proxy
CLI_SRC  := $(wildcard cli/*.c)
CLI      := $(if $(CLI_SRC),$(BUILD)/zos)
SIM_SRC  := $(wildcard tests/sim/*.c)
SIM      := $(if $(SIM_SRC),$(BUILD)/zos-node-sim)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test unit demo bench fuzz install clean format format-check help
.SECONDARY:  # keep objects make sees as intermediate (unit test objects)
all: $(PROXY) $(CLI) $(SIM)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(PROXY_LIB): $(PROXY_SRC:%.c=$(BUILD)/%.o)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# Unit and fuzz tests reach the proxy's own headers too.
$(BUILD)/tests/%.o: ALL_CFLAGS += -Iproxy
# The CLI's exit-code table is tested on its own: it needs nothing else of cli/.
$(BUILD)/tests/unit/test_exitcode.o: ALL_CFLAGS += -Icli
$(BUILD)/tests/test_exitcode: $(BUILD)/cli/exitcode.o

$(PROXY): $(BUILD)/proxy/main.o $(PROXY_LIB) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/zos: $(CLI_SRC:%.c=$(BUILD)/%.o) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/zos-node-sim: $(SIM_SRC:%.c=$(BUILD)/%.o) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/tests/unit/testutil.o $(PROXY_LIB) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

deps:
	@missing=""; for p in $(DEB_PKGS) $(DEB_TEST_PKGS); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get -o DPkg::Lock::Timeout=300 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y \
	        --no-install-recommends $$missing; \
	fi

unit: $(UNIT_BIN)
	$(Q)tests/run-unit.sh $(UNIT_BIN)

# The whole suite: deps first, then a fresh build of everything it runs.
test: deps
	$(Q)$(MAKE) --no-print-directory all unit-bins
	$(Q)BUILD=$(BUILD) tests/run-all.sh

.PHONY: unit-bins
unit-bins: $(UNIT_BIN)

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bench/passthrough.sh
	$(Q)if [ -x bench/jobs.sh ]; then bench/jobs.sh; fi
	$(Q)if [ -x bench/fanout.sh ]; then ZOS_PROXY=$(abspath $(BUILD))/zos-proxy bench/fanout.sh; fi
	$(Q)BUILD=$(BUILD) bench/fleet_cli.sh
	$(Q)ZOS_BUILD=$(abspath $(BUILD)) bench/lanes.sh

# Every tests/fuzz/fuzz_*.c is a libFuzzer target, linked with the library's
# sources (built again with the fuzzer's instrumentation).  With FUZZ_TIME=N,
# `make fuzz` then runs each one N seconds (see fuzz-run).
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ      := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_TIME ?=
fuzz: $(FUZZ)
	$(Q)$(if $(FUZZ_TIME),$(MAKE) --no-print-directory fuzz-run)
$(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz_util.h $(LIB_SRC) $(PROXY_SRC) $(wildcard include/zos/*.h proxy/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude -Iproxy \
	    $(PKG_CFLAGS) -o $@ $< $(LIB_SRC) $(PROXY_SRC) $(PKG_LIBS) -lpthread -lm

# Each target FUZZ_TIME seconds (default 60), one after the other, on a working
# copy of its seed corpus in $(BUILD)/fuzz/work/ (kept between runs; crashes there too).
.PHONY: fuzz-run
fuzz-run: $(FUZZ)
	$(Q)tests/fuzz/run.sh $(or $(FUZZ_TIME),60) $(BUILD)/fuzz/work $(FUZZ)

# The unit names the binaries as /usr/local/bin/...: rewritten for PREFIX.  systemd
# reads units from $(PREFIX)/lib/systemd/system and users from $(PREFIX)/lib/sysusers.d
# for both /usr and /usr/local; bash-completion loads completions/<command> on first use.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	    $(DESTDIR)$(COMPLETIONDIR)
	install -m 0755 $(PROXY) $(CLI) $(DESTDIR)$(PREFIX)/bin/
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' conf/zos-proxy.service >$(BUILD)/zos-proxy.service
	install -m 0644 $(BUILD)/zos-proxy.service $(DESTDIR)$(UNITDIR)/zos-proxy.service
	install -m 0644 conf/zos-proxy.sysusers $(DESTDIR)$(SYSUSERSDIR)/zos-proxy.conf
	install -m 0644 conf/zos.bash-completion $(DESTDIR)$(COMPLETIONDIR)/zos
	ln -sf zos $(DESTDIR)$(COMPLETIONDIR)/zos-proxy

clean:
	rm -rf $(BUILD)

FORMAT_FILES = $(wildcard include/zos/*.h proxy/*.h proxy/*.c cli/*.c cli/*.h tests/unit/*.c tests/sim/*.c tests/sim/*.h tests/fuzz/*.c tests/fuzz/*.h)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	$(Q)clang-format --dry-run --Werror $(FORMAT_FILES) && echo "format-check: ok"

help:
	@sed -n '2,13p' Makefile

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
