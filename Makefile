# netwall: one plain GNU Makefile.  `make` builds build/netwall; `make test` installs what is
# missing, builds, and runs every test; `make run` starts a demo wall on loopback.

CC       ?= cc
CFLAGS   ?= -O2 -g
PKGS     := libevent libevent_openssl libnghttp2 inih openssl sqlite3 libpq \
            libcurl jansson libseccomp
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wno-unused-parameter
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
ALLCFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Isrc -MMD -MP \
            $(shell pkg-config --cflags $(PKGS))
LDLIBS   := $(shell pkg-config --libs $(PKGS)) -lpthread -lm
LDFLAGS  += -pie -Wl,-z,relro,-z,now

ifeq ($(V),1)
Q :=
else
Q := @
endif

CORE_SRC := $(wildcard src/core/*.c)
WALL_SRC := $(wildcard src/wall/*.c)
HL7_SRC  := $(wildcard src/hl7/*.c)
INTAKE_SRC := $(wildcard src/intake/*.c)
CHAT_SRC := $(wildcard src/chat/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
LIB_SRC  := $(CORE_SRC) $(WALL_SRC) $(HL7_SRC) $(INTAKE_SRC) $(CHAT_SRC)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

# build/      release objects and binary
# build/asan/ the same, with AddressSanitizer and UndefinedBehaviorSanitizer: the test build,
#             the only one with test hooks (NETWALL_TEST_HOOKS: environment variables that
#             make a daemon call what its filter forbids, or move stream IDs)
B  := build
BA := build/asan
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

all: $(B)/netwall

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@[ -n "$(Q)" ] && echo "  CC $<" || true
	$(Q)$(CC) $(ALLCFLAGS) $(HARDEN) -c $< -o $@

$(BA)/%.o: %.c
	@mkdir -p $(dir $@)
	@[ -n "$(Q)" ] && echo "  CC(san) $<" || true
	$(Q)$(CC) $(ALLCFLAGS) -O1 $(SAN) -DNETWALL_TEST_HOOKS -c $< -o $@

$(B)/netwall: $(addprefix $(B)/,$(LIB_SRC:.c=.o) $(CLI_SRC:.c=.o))
	@[ -n "$(Q)" ] && echo "  LD $@" || true
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BA)/netwall: $(addprefix $(BA)/,$(LIB_SRC:.c=.o) $(CLI_SRC:.c=.o))
	@[ -n "$(Q)" ] && echo "  LD $@" || true
	$(Q)$(CC) $(SAN) -o $@ $^ $(LDLIBS)

# Unit tests: each tests/unit/test_X.c links against the library objects.
UNIT_BINS  := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
UNIT_ABINS := $(patsubst tests/unit/%.c,$(BA)/tests/%,$(UNIT_SRC))

$(B)/tests/%: $(B)/tests/unit/%.o $(addprefix $(B)/,$(LIB_SRC:.c=.o))
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BA)/tests/%: $(BA)/tests/unit/%.o $(addprefix $(BA)/,$(LIB_SRC:.c=.o))
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN) -o $@ $^ $(LDLIBS) -lcmocka

asan: $(BA)/netwall $(UNIT_ABINS)

deps:
	$(Q)scripts/deps.sh

unit: $(UNIT_BINS) $(UNIT_ABINS)
	$(Q)scripts/unit.sh $(UNIT_BINS) $(UNIT_ABINS)

integration: $(B)/netwall $(BA)/netwall
	$(Q)scripts/integration.sh

# Everything CI runs: install, the house rules of src/ (scripts/check_house.py: no ring of
# files, no file over 900 lines, no function over 80), build both flavours, unit tests, integration tests (both
# builds), then 20 s of fuzzing per parser from the checked-in seed corpus.
test: deps
	$(Q)scripts/check_house.py src
	$(Q)$(MAKE) --no-print-directory all asan
	$(Q)$(MAKE) --no-print-directory unit
	$(Q)$(MAKE) --no-print-directory integration
	$(Q)scripts/fuzz.sh 20

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/run.sh

bench: deps all
	$(Q)bench/wall.sh

bench-intake: deps all
	$(Q)bench/intake.sh
	$(Q)bench/deliver.sh

bench-chat: deps all
	$(Q)bench/chat.sh

# libFuzzer targets (clang): the saved crash inputs once, then each target from its seed
# corpus, two at a time (scripts/fuzz.sh).
fuzz:
	$(Q)scripts/fuzz.sh 60

PREFIX ?= /usr/local
MANDIR ?= $(PREFIX)/share/man
MAN1   := $(wildcard man/man1/*.1)
MAN5   := $(wildcard man/man5/*.5)
install: $(B)/netwall
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 0755 $(B)/netwall $(DESTDIR)$(PREFIX)/bin/netwall
	install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/netwall $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
	    $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5)))
.PHONY: uninstall

clean:
	rm -rf $(B)

house:
	$(Q)scripts/check_house.py src

format:
	clang-format -i src/*/*.c src/*/*.h tests/unit/*.c

# keep unit test objects between runs
.SECONDARY:

.PHONY: all asan deps unit integration test house run bench bench-intake bench-chat fuzz install clean format
-include $(shell find $(B) -name '*.d' 2>/dev/null)
