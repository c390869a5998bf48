# Sapphire's packaging entry points. `make deb` builds the Debian package
# (source and binary, through dpkg-buildpackage) in a scratch copy of the
# tree and leaves dist/sapphire_<version>_<arch>.deb; `make lintian` checks it.

VERSION := $(shell dpkg-parsechangelog -l debian/changelog -S Version)
ARCH    := $(shell dpkg --print-architecture)
DEB     := dist/sapphire_$(VERSION)_$(ARCH).deb

# Reuse cargo's output between `cargo build --release`, scripts and packages.
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
BUILD_DIR := $(CARGO_TARGET_DIR)/debian-build
SRC_DIR   := $(BUILD_DIR)/sapphire-$(VERSION)

.PHONY: deb lintian clean-deb check-version print-changes

deb: check-version
	rm -rf $(BUILD_DIR)
	mkdir -p $(SRC_DIR) dist
	# Tracked and new (not ignored) files only: no target/, dist/, demo state.
	git ls-files -z --cached --others --exclude-standard \
	  | xargs -0 -I{} sh -c 'test ! -e "{}" || echo "{}"' \
	  | tar -cf - -T - | tar -xf - -C $(SRC_DIR)
	cd $(SRC_DIR) && dpkg-buildpackage -us -uc --build=full
	cp $(BUILD_DIR)/sapphire_$(VERSION)_$(ARCH).deb $(DEB)
	@echo "built $(DEB)"

# Lintian on the source and binary packages; errors fail, warnings are shown.
lintian:
	lintian --fail-on error --info --display-info \
	  $(BUILD_DIR)/sapphire_$(VERSION)_$(ARCH).changes

print-changes:
	@echo $(BUILD_DIR)/sapphire_$(VERSION)_$(ARCH).changes

# Cargo.toml and debian/changelog must agree on the upstream version.
check-version:
	@cv=$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1); \
	dv=$$(echo "$(VERSION)" | sed 's/-[^-]*$$//'); \
	if [ "$$cv" != "$$dv" ]; then \
	  echo "version mismatch: Cargo.toml $$cv, debian/changelog $(VERSION)" >&2; exit 1; \
	fi

clean-deb:
	rm -rf $(BUILD_DIR) dist/sapphire_*
