# switchmail - one plain Makefile (STYLE §18).
#
#   make          build build/switchmail
#   make check    install missing Debian packages, build with -Werror, run
#                 cppcheck and clang-tidy (make lint), the unit tests, the
#                 end-to-end suite, and a sanitizer pass
#   make demo     install missing packages, build, send through both routes
#                 to local test servers and show where each message landed

SHELL     = /bin/bash
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
# libcrypto first in DT_NEEDED: the dynamic linker resolves libcrypto's
# 3000-odd self-references (it is linked -z now) by searching the libraries
# in that order, so putting it ahead of libesmtp and libconfig saves a tenth
# of a plain send's instructions.
LDLIBS   += $(shell pkg-config --libs libcrypto 2>/dev/null) \
            $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

# Where `make install` puts things (see "make install" below).  Those the
# programs must know are compiled in: config.h and providers.c keep their
# defaults under #ifndef.  $(BUILD)/paths.stamp changes only when one of
# these paths changes, and then every object is rebuilt.
PREFIX       ?= /usr/local
SBINDIR      ?= $(PREFIX)/sbin
DATADIR      ?= $(PREFIX)/share/switchmail
MANDIR       ?= $(PREFIX)/share/man
SYSCONFDIR   ?= /etc
SPOOLDIR     ?= /var/spool/switchmail
UNITDIR      ?= $(if $(filter /usr /usr/,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
LOGROTATEDIR ?= $(SYSCONFDIR)/logrotate.d
PATH_DEFS     = -DCONFIG_DEFAULT_PATH='"$(SYSCONFDIR)/switchmail.conf"' \
                -DCONFIG_QUEUE_DIR_DEFAULT='"$(SPOOLDIR)"' \
                -DPROVIDERS_PATH='"$(DATADIR)/providers.conf"'
ALL_CFLAGS   += $(PATH_DEFS)

# Debian packages the build, the tests and the demo need.
DEB_PKGS  = build-essential pkg-config libesmtp-dev libconfig-dev libssl-dev \
            libcmocka-dev python3 python3-aiosmtpd python3-pytest \
            python3-cryptography clang libclang-rt-14-dev iproute2 util-linux \
            man-db groff-base time cppcheck clang-tidy

# Every module goes into one archive; programs and unit tests link it, so
# each pulls in only the modules it uses (unit tests never the network).
MAIN_SRC  = src/switchmail.c src/switchmailctl.c
LIB_SRC   = $(filter-out $(MAIN_SRC),$(wildcard src/*.c)) $(wildcard compat/*.c)
LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB       = $(BUILD)/libswitchmail.a
PROGRAMS  = $(BUILD)/switchmail $(BUILD)/switchmailctl

UNIT_TESTS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all deps check unit e2e asan demo bench clean format fuzz fuzz-build \
        fuzz-smoke lint
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

# libFuzzer targets (tests/fuzz/fuzz_NAME.c, seeds in tests/fuzz/NAME/),
# linked with a copy of the library built with the same instrumentation.
FUZZ_BUILD   = build/fuzz
FUZZ_TARGETS = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TIME   ?= 60
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=all

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang OPT="-O1 -g" \
	  SANITIZE="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" $(FUZZ_BUILD)/libswitchmail.a
	@set -e; for t in $(FUZZ_TARGETS); do \
	  clang -O1 -g -fsanitize=fuzzer $(FUZZ_SAN) -std=c11 -D_GNU_SOURCE -Isrc -Icompat \
	    -o $(FUZZ_BUILD)/fuzz_$$t tests/fuzz/fuzz_$$t.c $(FUZZ_BUILD)/libswitchmail.a $(LDLIBS); \
	done

# Each target for FUZZ_TIME seconds; a crash or a leak fails (artifacts in
# build/fuzz/).  A crash found becomes a unit test.
fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz_$$t for $(FUZZ_TIME) s"; mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  LSAN_OPTIONS=suppressions=$(abspath tests/fuzz/lsan.supp) \
	    $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_TIME) -print_final_stats=0 \
	    -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus/$$t tests/fuzz/$$t 2>&1 | \
	    grep -E 'Done|ERROR|SUMMARY|artifact' ; \
	  test "$${PIPESTATUS[0]}" = 0; \
	done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_TIME=10

check: deps
	$(MAKE) all
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) e2e
	$(MAKE) asan
	$(MAKE) fuzz-smoke

# Static analysis (issue 7): cppcheck, then clang-tidy with the checks
# chosen and justified in .clang-tidy; any finding fails.  A false positive
# is silenced at its line, with its reason (NOLINT(check): why, or
# cppcheck-suppress id).  clang-tidy needs about 90 s of CPU for the tree,
# so LINT_JOBS files run at a time (about 55 s on 2 cores); its "N warnings
# generated" lines count the system headers it filters out and are dropped.
LINT_SRC    = $(wildcard src/*.c compat/*.c)
LINT_JOBS  ?= 2
LINT_FLAGS  = -std=c11 -D_GNU_SOURCE -Isrc -Icompat $(PATH_DEFS) \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
lint:
	cppcheck --quiet --std=c11 --enable=warning,portability,performance \
	  --inline-suppr --error-exitcode=1 -D_GNU_SOURCE -Isrc -Icompat src compat
	@echo "clang-tidy on $(words $(LINT_SRC)) files, $(LINT_JOBS) at a time"
	@set -o pipefail; printf '%s\n' $(LINT_SRC) | \
	  xargs -P $(LINT_JOBS) -I{} clang-tidy --quiet {} -- $(LINT_FLAGS) 2>&1 | \
	  { grep -v '^[0-9]* warnings\? generated\.$$' || true; }

demo: deps all
	$(PYTHON) tests/demo.py $(abspath $(BUILD)/switchmail)

# switchmail beside msmtp and esmtp on 127.0.0.1 (tests/bench/README.md);
# BENCH_* environment variables size it; results in tests/bench/results.md.
BENCH_PKGS = build-essential pkg-config libesmtp-dev libconfig-dev libssl-dev \
             openssl python3 msmtp esmtp time
bench:
	$(MAKE) deps DEB_PKGS="$(BENCH_PKGS)"
	$(MAKE) all
	@mkdir -p $(BUILD)/bench
	cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o $(BUILD)/bench/sink \
	  tests/bench/sink.c -lssl -lcrypto -pthread
	$(PYTHON) tests/bench/bench.py $(abspath $(BUILD)/switchmail) $(abspath $(BUILD)/bench/sink)

format:
	clang-format -i src/*.[ch] compat/*.[ch] tests/unit/*.c

clean:
	rm -rf build

# ---- make install / make uninstall ----------------------------------------
#
#   make install [PREFIX=/usr/local] [DESTDIR=/stage] [SBINDIR=...] ...
#
#   $(SBINDIR)/switchmail          2755 root:switchmail (setgid: any user may
#                                  send; only the group reads the password)
#   $(SBINDIR)/switchmailctl       0755 root:root
#   $(SBINDIR)/sendmail, mailq, newaliases -> switchmail
#   /usr/lib/sendmail -> $(SBINDIR)/switchmail       (PREFIX=/usr only)
#   $(SYSCONFDIR)/switchmail.conf  0640 root:switchmail, only when absent
#   $(LOGROTATEDIR)/switchmail     0644, only when absent
#   $(DATADIR)/providers.conf      0644
#   $(SPOOLDIR), its tmp/ new/ failed/   2770 root:switchmail
#   $(MANDIR)/man8/switchmail.8 switchmailctl.8, man5/switchmail.conf.5
#   $(UNITDIR)/switchmail-queue.service, .timer (not enabled)
#
# Installed copies of the sample configuration, the units and the man pages
# name the installed paths (sed on the defaults they are written with).
# Files under SYSCONFDIR belong to the administrator: an existing one is
# never overwritten, and uninstall removes one only when it is still the
# sample.  A link named sendmail, mailq or newaliases that is not ours
# (another MTA's) stops the install; REPLACE_MTA=yes replaces it.
#
# Owners: as root, the group switchmail is created (groupadd --system) when
# missing and owners are set, with DESTDIR too, because chgrp needs the group
# on this machine: the staged tree then carries this machine's gid.  As
# non-root, or with OWNERS=no (packaging: set owners in postinst), owners
# and groups are left alone and the install says so; modes are set anyway.
# Installing twice is harmless.
INSTALL_GROUP ?= switchmail
OWNERS        ?= yes
REPLACE_MTA   ?= no
STAGE          = $(BUILD)/install
LINKS          = $(DESTDIR)$(SBINDIR)/sendmail $(DESTDIR)$(SBINDIR)/mailq \
                 $(DESTDIR)$(SBINDIR)/newaliases \
                 $(if $(filter /usr /usr/,$(PREFIX)),$(DESTDIR)/usr/lib/sendmail)
MAN8           = src/switchmail.8 src/switchmailctl.8
MAN5           = src/switchmail.conf.5
UNITS          = etc/systemd/switchmail-queue.service etc/systemd/switchmail-queue.timer
# The default paths the sources are written with, rewritten to these ones.
SED_PATHS      = sed -e 's|/usr/local/sbin/|$(SBINDIR)/|g' \
                     -e 's|/usr/local/share/switchmail|$(DATADIR)|g' \
                     -e 's|/usr/local/lib/systemd/system|$(UNITDIR)|g' \
                     -e 's|/etc/switchmail\.conf|$(SYSCONFDIR)/switchmail.conf|g' \
                     -e 's|/var/spool/switchmail|$(SPOOLDIR)|g' \
                     -e 's|^ExecStart=[^ ]*/switchmailctl|ExecStart=$(SBINDIR)/switchmailctl|'
# Shell: whether "$$1" is a symbolic link to switchmail.
IS_OURS        = is_ours() { [ -L "$$1" ] && case "$$(readlink "$$1")" in \
                   switchmail|*/switchmail) true;; *) false;; esac; }

.PHONY: install uninstall install-stage
$(LIB_OBJ) $(MAIN_SRC:%.c=$(BUILD)/%.o): $(BUILD)/paths.stamp

# Rewritten only when a compiled-in path changes.
$(BUILD)/paths.stamp: FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' "$(SYSCONFDIR)" "$(SPOOLDIR)" "$(DATADIR)" | cmp -s - $@ || \
	  printf '%s\n' "$(SYSCONFDIR)" "$(SPOOLDIR)" "$(DATADIR)" > $@
FORCE:

# The installed copies of the text files, with the installed paths.
install-stage:
	@mkdir -p $(STAGE)
	@for f in etc/switchmail.conf $(UNITS) $(MAN8) $(MAN5); do \
	  $(SED_PATHS) $$f > $(STAGE)/$$(basename $$f) || exit 1; done

install: all install-stage
	@set -e; umask 022; d='$(DESTDIR)'; $(IS_OURS); \
	if [ "$$(id -u)" = 0 ] && [ "$(OWNERS)" != no ]; then \
	  if ! getent group $(INSTALL_GROUP) >/dev/null; then \
	    echo "creating the system group $(INSTALL_GROUP)"; \
	    groupadd --system $(INSTALL_GROUP); fi; \
	  root="-o root -g root"; group="-o root -g $(INSTALL_GROUP)"; \
	else \
	  echo "note: owners and groups left as they are (not root, or OWNERS=no);" \
	       "as root they would be root:$(INSTALL_GROUP) (binary, config, spool)"; \
	  root=; group=; \
	fi; \
	for l in $(LINKS); do \
	  if { [ -e "$$l" ] || [ -L "$$l" ]; } && ! is_ours "$$l" && [ "$(REPLACE_MTA)" != yes ]; then \
	    echo "$$l exists and is not switchmail's (another MTA?): remove that" \
	         "package (dpkg -S $${l#$$d} names it) or make install REPLACE_MTA=yes" >&2; \
	    exit 1; fi; done; \
	mkdir -p "$$d$(SBINDIR)" "$$d$(DATADIR)" "$$d$(SYSCONFDIR)" "$$d$(LOGROTATEDIR)" \
	  "$$d$(MANDIR)/man8" "$$d$(MANDIR)/man5" "$$d$(UNITDIR)"; \
	install -m 2755 $$group $(BUILD)/switchmail "$$d$(SBINDIR)/switchmail"; \
	install -m 0755 $$root $(BUILD)/switchmailctl "$$d$(SBINDIR)/switchmailctl"; \
	for l in $(LINKS); do mkdir -p "$$(dirname "$$l")"; \
	  ln -sfnr "$$d$(SBINDIR)/switchmail" "$$l"; done; \
	if [ -f etc/providers.conf ]; then \
	  install -m 0644 $$root etc/providers.conf "$$d$(DATADIR)/providers.conf"; \
	else echo "warning: etc/providers.conf is missing: not installed" >&2; fi; \
	if [ -e "$$d$(SYSCONFDIR)/switchmail.conf" ]; then \
	  echo "kept $$d$(SYSCONFDIR)/switchmail.conf (it exists; the sample is etc/switchmail.conf)"; \
	else install -m 0640 $$group $(STAGE)/switchmail.conf "$$d$(SYSCONFDIR)/switchmail.conf"; fi; \
	if [ -e "$$d$(LOGROTATEDIR)/switchmail" ]; then \
	  echo "kept $$d$(LOGROTATEDIR)/switchmail (it exists)"; \
	else install -m 0644 $$root etc/switchmail.logrotate "$$d$(LOGROTATEDIR)/switchmail"; fi; \
	for s in "" /tmp /new /failed; do \
	  install -d -m 2770 $$group "$$d$(SPOOLDIR)$$s"; done; \
	install -m 0644 $$root $(addprefix $(STAGE)/,$(notdir $(MAN8))) "$$d$(MANDIR)/man8/"; \
	install -m 0644 $$root $(addprefix $(STAGE)/,$(notdir $(MAN5))) "$$d$(MANDIR)/man5/"; \
	install -m 0644 $$root $(addprefix $(STAGE)/,$(notdir $(UNITS))) "$$d$(UNITDIR)/"; \
	echo "installed switchmail in $$d$(SBINDIR); queue runs every minute after:"; \
	echo "  systemctl daemon-reload && systemctl enable --now switchmail-queue.timer"

# Removes what install installed; says what it keeps and why.
uninstall: install-stage
	@set -e; d='$(DESTDIR)'; $(IS_OURS); \
	rm -f "$$d$(SBINDIR)/switchmail" "$$d$(SBINDIR)/switchmailctl"; \
	for l in $(LINKS); do \
	  if is_ours "$$l"; then rm -f "$$l"; \
	  elif [ -e "$$l" ] || [ -L "$$l" ]; then echo "kept $$l (not switchmail's)"; fi; done; \
	rm -f "$$d$(DATADIR)/providers.conf"; \
	rmdir "$$d$(DATADIR)" 2>/dev/null || true; \
	for f in $(addprefix man8/,$(notdir $(MAN8))) $(addprefix man5/,$(notdir $(MAN5))); do \
	  rm -f "$$d$(MANDIR)/$$f"; done; \
	for f in $(notdir $(UNITS)); do rm -f "$$d$(UNITDIR)/$$f"; done; \
	keep_if_changed() { \
	  if [ ! -e "$$2" ]; then :; \
	  elif cmp -s "$$1" "$$2"; then rm -f "$$2"; \
	  else echo "kept $$2 (changed since installed)"; fi; }; \
	keep_if_changed $(STAGE)/switchmail.conf "$$d$(SYSCONFDIR)/switchmail.conf"; \
	keep_if_changed etc/switchmail.logrotate "$$d$(LOGROTATEDIR)/switchmail"; \
	q="$$d$(SPOOLDIR)"; \
	count() { find "$$q/$$1" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }; \
	if [ ! -d "$$q" ]; then :; \
	elif [ "$$(count new)$$(count failed)$$(count tmp)" != 000 ]; then \
	  echo "kept $$q: it holds $$(count new) waiting, $$(count failed) failed and" \
	       "$$(count tmp) incoming message(s) (mailq lists them)"; \
	else \
	  rm -f "$$q"/last-* "$$q"/.last-*; \
	  rmdir "$$q/tmp" "$$q/new" "$$q/failed" 2>/dev/null || true; \
	  rmdir "$$q" 2>/dev/null || echo "kept $$q (it holds files switchmail did not make)"; \
	fi; \
	if getent group $(INSTALL_GROUP) >/dev/null; then \
	  echo "kept the group $(INSTALL_GROUP) (groupdel $(INSTALL_GROUP) removes it)"; fi

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
