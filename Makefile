# pam_mfa: build, install and package.
#
#   make                      release build of pam_mfa.so and mfa-ctl, plus
#                             mfa-ctl's man page and shell completions
#   make install              installs them (as root); PREFIX/DESTDIR aware
#   make uninstall            removes what `make install` put there, except
#                             /etc/pam_mfa.toml and the store
#   make deb                  builds the Debian package with dpkg-buildpackage
#                             (packaging/debian); prints the .deb's path
#
# PREFIX defaults to /usr, not /usr/local: libpam loads modules named by a
# bare name (`pam_mfa.so`) only from the system's security directory. That is
# $(PREFIX)/lib/<multiarch>/security on Debian and derivatives (found with
# dpkg-architecture); elsewhere set LIBDIR, e.g. `make install LIBDIR=/usr/lib64`
# on Fedora/RHEL/SUSE, or SECUREDIR directly.

PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
DOCDIR     ?= $(DATADIR)/doc/pam-mfa
SYSCONFDIR ?= /etc
STATEDIR   ?= /var/lib
ifeq ($(origin MULTIARCH),undefined)
MULTIARCH  := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
endif
ifneq ($(MULTIARCH),)
LIBDIR     ?= $(PREFIX)/lib/$(MULTIARCH)
ZSHCOMPDIR ?= $(DATADIR)/zsh/vendor-completions
else
LIBDIR     ?= $(PREFIX)/lib
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
endif
SECUREDIR   ?= $(LIBDIR)/security
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
# The store (0700): `no` for packages, whose maintainer script creates it so
# that removing the package keeps the secrets.
INSTALL_STORE ?= yes

CARGO ?= cargo
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
RELEASE := $(CARGO_TARGET_DIR)/release
GEN     := $(CARGO_TARGET_DIR)/generated

INSTALL ?= install
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

.PHONY: all build generated install uninstall deb clean

all: build generated

build:
	$(CARGO) build --release --locked -p pam_mfa -p mfa-ctl

# mfa-ctl's man page and completions come from its own clap definitions, so
# they cannot drift from the program.
generated: build
	mkdir -p $(GEN)
	@# One page per command (mfa-ctl.8, mfa-ctl-enroll.8, ...). mfa-ctl lives in
	@# sbin, so its pages belong in section 8; clap_mangen writes section 1:
	@# the section in .TH and in the cross-references is rewritten.
	rm -rf $(GEN)/man1 $(GEN)/man8
	mkdir -p $(GEN)/man1 $(GEN)/man8
	$(RELEASE)/mfa-ctl man --dir $(GEN)/man1
	for f in $(GEN)/man1/*.1; do \
		sed -e '1,/^\.TH /s/^\(\.TH [^ ]*\) 1 /\1 8 /' -e 's/\(mfa\\-ctl[a-z\\-]*\)(1)/\1(8)/g' "$$f" \
			> "$(GEN)/man8/$$(basename "$$f" .1).8"; \
	done
	test -s $(GEN)/man8/mfa-ctl.8
	$(RELEASE)/mfa-ctl completions bash > $(GEN)/mfa-ctl.bash.tmp && mv $(GEN)/mfa-ctl.bash.tmp $(GEN)/mfa-ctl.bash
	$(RELEASE)/mfa-ctl completions zsh > $(GEN)/_mfa-ctl.tmp && mv $(GEN)/_mfa-ctl.tmp $(GEN)/_mfa-ctl
	$(RELEASE)/mfa-ctl completions fish > $(GEN)/mfa-ctl.fish.tmp && mv $(GEN)/mfa-ctl.fish.tmp $(GEN)/mfa-ctl.fish

install: all
	$(INSTALL) -d $(DESTDIR)$(SECUREDIR) $(DESTDIR)$(SBINDIR) \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) \
		$(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 0644 $(RELEASE)/libpam_mfa.so $(DESTDIR)$(SECUREDIR)/pam_mfa.so
	$(INSTALL) -m 0755 $(RELEASE)/mfa-ctl $(DESTDIR)$(SBINDIR)/mfa-ctl
	$(INSTALL) -m 0644 packaging/man/pam_mfa.8 $(GEN)/man8/*.8 $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 0644 packaging/man/pam_mfa.toml.5 $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 0644 $(GEN)/mfa-ctl.bash $(DESTDIR)$(BASHCOMPDIR)/mfa-ctl
	$(INSTALL) -m 0644 $(GEN)/_mfa-ctl $(DESTDIR)$(ZSHCOMPDIR)/_mfa-ctl
	$(INSTALL) -m 0644 $(GEN)/mfa-ctl.fish $(DESTDIR)$(FISHCOMPDIR)/mfa-ctl.fish
	@# Every example file, whatever is there (PAM service files, Dovecot and Postfix snippets).
	cd packaging/examples && find . -type f | LC_ALL=C sort | while read -r f; do \
		$(INSTALL) -D -m 0644 "$$f" "$(DESTDIR)$(DOCDIR)/examples/$$f" || exit 1; done
	@# The configuration is the admin's: installed only if absent, never overwritten.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/pam_mfa.toml ]; then \
		echo "kept the existing $(DESTDIR)$(SYSCONFDIR)/pam_mfa.toml (the default is in packaging/pam_mfa.toml)"; \
	else \
		echo "$(INSTALL) -D -m 0644 packaging/pam_mfa.toml $(DESTDIR)$(SYSCONFDIR)/pam_mfa.toml"; \
		$(INSTALL) -D -m 0644 packaging/pam_mfa.toml $(DESTDIR)$(SYSCONFDIR)/pam_mfa.toml; \
	fi
ifeq ($(INSTALL_STORE),yes)
	@# The store holds TOTP secrets: a folder only its owner (root) can enter.
	@# Installed for real, the configured store is set up as the package's
	@# postinst does (its marker tells the module the store is there; a
	@# folder that exists without one is refused, not emptied); staged, only
	@# the folder.
ifeq ($(DESTDIR),)
	$(SBINDIR)/mfa-ctl store init
else
	$(INSTALL) -d -m 0700 $(DESTDIR)$(STATEDIR)/pam_mfa
endif
endif

uninstall:
	rm -f $(DESTDIR)$(SECUREDIR)/pam_mfa.so $(DESTDIR)$(SBINDIR)/mfa-ctl \
		$(DESTDIR)$(MANDIR)/man8/pam_mfa.8 $(DESTDIR)$(MANDIR)/man8/mfa-ctl.8 \
		$(DESTDIR)$(MANDIR)/man8/mfa-ctl-*.8 \
		$(DESTDIR)$(MANDIR)/man5/pam_mfa.toml.5 \
		$(DESTDIR)$(BASHCOMPDIR)/mfa-ctl $(DESTDIR)$(ZSHCOMPDIR)/_mfa-ctl \
		$(DESTDIR)$(FISHCOMPDIR)/mfa-ctl.fish
	rm -rf $(DESTDIR)$(DOCDIR)
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/pam_mfa.toml and the store $(DESTDIR)$(STATEDIR)/pam_mfa; remove them by hand if you want them gone"

# dpkg-buildpackage wants debian/ at the top of the source tree; the tree is
# copied to a build folder with packaging/debian as its debian/, so the
# working tree stays clean. Cargo's target folder is shared, so the crates
# built for `make` are reused.
DEBBUILD ?= $(CARGO_TARGET_DIR)/debian-build
DEBSRC   := Cargo.toml Cargo.lock Makefile rustfmt.toml clippy.toml pam_mfa mfa-ctl tests packaging

deb:
	rm -rf $(DEBBUILD)
	mkdir -p $(DEBBUILD)/pam-mfa
	tar -cf - --exclude=target --exclude='*.swp' $(DEBSRC) | tar -xf - -C $(DEBBUILD)/pam-mfa
	cp -a packaging/debian $(DEBBUILD)/pam-mfa/debian
	cd $(DEBBUILD)/pam-mfa && dpkg-buildpackage --build=binary --no-sign
	@ls $(DEBBUILD)/*.deb

clean:
	$(CARGO) clean --release -p pam_mfa -p mfa-ctl
	rm -rf $(GEN) $(DEBBUILD)
