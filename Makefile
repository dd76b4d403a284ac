# switchmail - one plain Makefile (STYLE §18).
#
#   make          build build/switchmail
#   make check    install missing Debian packages, build with -Werror, run the
#                 unit tests, the end-to-end suite, and a sanitizer pass
#   make demo     install missing packages, build, send through both routes
#                 to local test servers and show where each message landed

CC       ?= cc
PKGS      = libesmtp-1.0 libconfig openssl
PYTHON    = /usr/bin/python3
BUILD    ?= build

WARN      = -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -fno-common -Werror \
            -Wno-format-truncation  # snprintf truncation is intended
WARN     += $(if $(findstring clang,$(CC)),-Wno-unknown-warning-option)
OPT      ?= -O2 -g
SANITIZE ?=
CFLAGS   ?=
# Our flags come first and cannot be lost when CFLAGS is set on the command
# line; SANITIZE is set by `make asan`.
ALL_CFLAGS = $(OPT) $(SANITIZE) -std=c11 -D_GNU_SOURCE $(WARN) -Isrc -Icompat \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

# Debian packages the build, the tests and the demo need.
DEB_PKGS  = build-essential pkg-config libesmtp-dev libconfig-dev libssl-dev \
            libcmocka-dev python3 python3-aiosmtpd python3-pytest \
            python3-cryptography clang libclang-rt-14-dev iproute2 util-linux \
            man-db time

# Every module goes into one archive; programs and unit tests link it, so
# each pulls in only the modules it uses (unit tests never the network).
MAIN_SRC  = src/switchmail.c src/switchmailctl.c
LIB_SRC   = $(filter-out $(MAIN_SRC),$(wildcard src/*.c)) $(wildcard compat/*.c)
LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB       = $(BUILD)/libswitchmail.a
PROGRAMS  = $(BUILD)/switchmail $(BUILD)/switchmailctl

UNIT_TESTS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all deps check unit e2e asan demo clean format
all: $(PROGRAMS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

# interpose.o is named: its connect() is wanted by libESMTP, not by us.
$(PROGRAMS): $(BUILD)/%: $(BUILD)/src/%.o $(BUILD)/compat/interpose.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing missing Debian packages:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root (or install: $$missing)"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

e2e: $(PROGRAMS)
	SWITCHMAIL_BIN=$(abspath $(BUILD)/switchmail) SWITCHMAIL_SANITIZED=$(if $(SANITIZE),1,) \
	  $(PYTHON) -m pytest -q tests/e2e

# The unit tests and the end-to-end suite once more under ASan + UBSan.
asan:
	$(MAKE) BUILD=build/asan CC=clang OPT="-O1 -g" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  unit e2e

check: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) e2e
	$(MAKE) asan

demo: deps all
	$(PYTHON) tests/demo.py $(abspath $(BUILD)/switchmail)

format:
	clang-format -i src/*.[ch] compat/*.[ch] tests/unit/*.c

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
