# overcrypt - top-level build. Out of tree into build/ (BUILD=...).
#
#   make            build the programs into build/
#   make deps       install every build and test dependency (Debian 12, root)
#   make check      unit tests (cmocka) + integration tests (pytest)
#   make demo       the main job (see README.md)
#   make bench      benchmarks with their anchors, ratios printed
#   make fuzz       every libFuzzer target for FUZZ_SECONDS each
#   make install    PREFIX=/usr/local DESTDIR=
#   SANITIZE=1      build with AddressSanitizer + UndefinedBehaviorSanitizer

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
PYTHON   ?= /usr/bin/python3
FUZZ_SECONDS ?= 30

PKGS := libsodium openssl libcjson inih fuse3 libcurl pwquality zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 -Wvla
HARDEN  := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) $(HARDEN) -pthread -I. $(PKG_CFLAGS)
LDFLAGS += -pie -pthread -Wl,-z,relro,-z,now
LDLIBS  += $(PKG_LIBS) -lcrypt

ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

# Libraries, lowest first; each folder is one static library.
LIBDIRS := common crypto policy fusefs daemon
LIBS    := $(foreach d,$(LIBDIRS),$(BUILD)/libovc-$(d).a)
LINKLIBS := -Wl,--start-group $(foreach d,daemon fusefs policy crypto common,$(BUILD)/libovc-$(d).a) -Wl,--end-group

PROGRAMS := $(BUILD)/overcrypt $(BUILD)/overcrypt-admin $(BUILD)/overcryptd
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRCS))
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

# Rebuild everything when the flags change (e.g. SANITIZE=1 after a plain build).
FLAGS_STAMP := $(BUILD)/.flags
$(shell mkdir -p $(BUILD); echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $(FLAGS_STAMP) || echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $(FLAGS_STAMP))

.PHONY: all deps deps-bench check unit integration demo demo-stop bench soak fuzz install clean
all: $(PROGRAMS)

define libdir
$(d)_SRCS := $$(wildcard $(d)/*.c)
$(d)_OBJS := $$(patsubst %.c,$(BUILD)/obj/%.o,$$($(d)_SRCS))
$(BUILD)/libovc-$(d).a: $$($(d)_OBJS)
	@mkdir -p $$(@D)
	rm -f $$@
	ar rcs $$@ $$^ $(if $$($(d)_OBJS),,$$(BUILD)/obj/empty.o)
endef
$(foreach d,$(LIBDIRS),$(eval $(libdir)))

$(BUILD)/obj/empty.o: $(FLAGS_STAMP)
	@mkdir -p $(@D)
	echo 'typedef int ovc_empty_unit;' | $(CC) $(CFLAGS) -x c -c -o $@ -

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/overcrypt: $(BUILD)/obj/cli/overcrypt.o $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard cli/cli_*.c)) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LINKLIBS) $(LDLIBS)
# The org.conf template that `overcrypt-admin init` writes, compiled in.
$(BUILD)/gen/org_conf_example.c: packaging/org.conf.example
	@mkdir -p $(@D)
	{ echo 'const char ovc_org_conf_example[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@
$(BUILD)/obj/gen/org_conf_example.o: $(BUILD)/gen/org_conf_example.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/overcrypt-admin: $(BUILD)/obj/cli/overcrypt-admin.o $(BUILD)/obj/gen/org_conf_example.o $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard cli/cli_*.c)) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LINKLIBS) $(LDLIBS)
$(BUILD)/overcryptd: $(BUILD)/obj/cli/overcryptd.o $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard cli/cli_*.c)) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LINKLIBS) $(LDLIBS)

# cli/ holds mains and their shared helpers (cli_*.c); it is not a library.
cli_SRCS := $(wildcard cli/*.c)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LINKLIBS) $(LDLIBS) -lcmocka

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LINKLIBS) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LINKLIBS) $(LDLIBS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# --- dependencies ---------------------------------------------------------
DEB_PKGS := build-essential pkg-config clang libclang-rt-14-dev \
	libfuse3-dev fuse3 libsodium-dev libssl-dev openssl libcurl4-openssl-dev \
	libcjson-dev libinih-dev libcmocka-dev libpwquality-dev cracklib-runtime \
	zlib1g-dev python3 python3-pytest python3-nacl python3-cryptography age minisign nginx bindfs gocryptfs \
	fio sqlite3 git rsync util-linux procps time systemd man-db
# only the benchmark needs these (a kernel tarball to unpack, a profiler, an anchor)
BENCH_PKGS := securefs linux-source-6.1 linux-perf
deps:
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(DEB_PKGS)

deps-bench: deps
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BENCH_PKGS)

# --- tests ------------------------------------------------------------------
check: all unit integration

unit: $(UNIT_BINS)
	@set -e; pass=0; fail=0; for t in $(UNIT_BINS); do \
	  echo "== $$t"; \
	  if OVC_TESTKIT=$(CURDIR)/tests/vectors/age-testkit $$t; then pass=$$((pass+1)); else fail=$$((fail+1)); echo "FAILED: $$t"; fi; \
	done; echo "unit test programs: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

integration: all $(TOOL_BINS)
	OVC_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# --- demo ---------------------------------------------------------------------
demo: all
	bash tests/demo.sh $(BUILD)

demo-stop:
	@bash tests/demo-stop.sh

# --- benchmarks ---------------------------------------------------------------
# The long soak (30 minutes; OVC_SOAK_MINUTES=N): not part of check or CI.
soak: all $(TOOL_BINS)
	OVC_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/soak

bench: deps-bench all $(BENCH_BINS) $(TOOL_BINS)
	bash tests/bench/run.sh $(BUILD)

# --- fuzzing (clang + libFuzzer; sources built again with the fuzzer) -------
FUZZ_CFLAGS := -std=gnu11 -g -O1 -I. $(PKG_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined
FUZZ_LIB_SRCS := $(wildcard common/*.c crypto/*.c policy/*.c daemon/*.c) fusefs/journal.c fusefs/decide.c
FUZZ_LIB_OBJS := $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(FUZZ_LIB_SRCS))
$(BUILD)/fuzzobj/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -c -o $@ $<
$(BUILD)/fuzz/libfuzzlibs.a: $(FUZZ_LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^
$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/fuzz/libfuzzlibs.a $(FLAGS_STAMP)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/fuzz/libfuzzlibs.a $(PKG_LIBS) -lcrypt

fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do \
	  n=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  echo "== $$n for $(FUZZ_SECONDS)s"; \
	  seeds=; [ -d tests/fuzz/seeds/$$n ] && seeds=tests/fuzz/seeds/$$n; $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(BUILD)/fuzz/corpus-$$n $$seeds 2>&1 | tail -n 4; \
	done

# --- install --------------------------------------------------------------------
# overcryptd goes to bin: users run it as their own agent (the user unit).
# The units name it by its installed path (BINDIR, without DESTDIR).
BINDIR         ?= $(PREFIX)/bin
SYSTEMDUSERDIR ?= $(PREFIX)/lib/systemd/user
SYSTEMDSYSDIR  ?= $(PREFIX)/lib/systemd/system
UNIT_SED := sed -e 's|@BINDIR@|$(BINDIR)|g'

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0755 $(BUILD)/overcrypt $(BUILD)/overcrypt-admin $(BUILD)/overcryptd $(DESTDIR)$(BINDIR)/
	rm -f $(DESTDIR)$(PREFIX)/sbin/overcryptd  # earlier installs put it in sbin
	install -m 0644 packaging/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 packaging/man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -d $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/doc/overcrypt
	install -m 0644 packaging/man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 packaging/overcrypt.conf.example packaging/org.conf.example README.md \
		docs/*.md $(DESTDIR)$(PREFIX)/share/doc/overcrypt/
	install -d $(DESTDIR)$(SYSTEMDUSERDIR) $(DESTDIR)$(SYSTEMDSYSDIR)
	$(UNIT_SED) packaging/systemd/overcryptd.service > $(DESTDIR)$(SYSTEMDUSERDIR)/overcryptd.service.tmp
	chmod 0644 $(DESTDIR)$(SYSTEMDUSERDIR)/overcryptd.service.tmp
	mv -f $(DESTDIR)$(SYSTEMDUSERDIR)/overcryptd.service.tmp $(DESTDIR)$(SYSTEMDUSERDIR)/overcryptd.service
	$(UNIT_SED) packaging/systemd/overcryptd-system.service > $(DESTDIR)$(SYSTEMDSYSDIR)/overcryptd-system.service.tmp
	chmod 0644 $(DESTDIR)$(SYSTEMDSYSDIR)/overcryptd-system.service.tmp
	mv -f $(DESTDIR)$(SYSTEMDSYSDIR)/overcryptd-system.service.tmp $(DESTDIR)$(SYSTEMDSYSDIR)/overcryptd-system.service

clean:
	rm -rf $(BUILD)
