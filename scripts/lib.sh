# Shared helpers for scripts/demo and scripts/test. Source it; do not run it.
set -euo pipefail

SAPPHIRE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

log() { printf '==> %s\n' "$*" >&2; }

# apt_install_from FILE...: installs the packages listed in FILEs that are not
# installed yet. Runs apt-get update once, only if something is missing.
apt_install_from() {
    local want=() pkg
    while read -r pkg; do
        [ -n "$pkg" ] || continue
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            want+=("$pkg")
        fi
    done < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$@" | sort -u)
    [ ${#want[@]} -gt 0 ] || return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    log "installing Debian packages: ${want[*]}"
    "${sudo[@]}" apt-get update -q
    # Packaged servers (ngircd, prosody) must not start as system services:
    # the tests start their own copies on free loopback ports.
    local rc=/usr/sbin/policy-rc.d created_rc=0
    if [ ! -e "$rc" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$rc" >/dev/null
        "${sudo[@]}" chmod +x "$rc"
        created_rc=1
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${want[@]}"
    [ "$created_rc" -eq 0 ] || "${sudo[@]}" rm -f "$rc"
}

ensure_rust() {
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        log "Rust is missing: Sapphire needs Rust 1.82 or newer with cargo, rustfmt and clippy"
        log "(Debian 12's own rustc is too old); install it with rustup, then run this again."
        exit 1
    fi
}
