# Shared helpers for the nspawn system test. Source it; do not run it.
#
# A Debian 12 root made with debootstrap is cached OUTSIDE the repository
# (default /var/cache/sapphire-test/bookworm-rootfs). Every run mounts a fresh
# overlayfs on top of it, boots that with `systemd-nspawn --boot
# --register=no`, drives it, and tears everything down again.
set -euo pipefail

SYSTEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SAPPHIRE_ROOT=$(cd "$SYSTEST_DIR/../.." && pwd)
CACHE_DIR=${SAPPHIRE_SYSTEST_CACHE:-/var/cache/sapphire-test}
ROOTFS=$CACHE_DIR/bookworm-rootfs
SUITE=bookworm

# Packages baked into the cached root. Keep in sync with the stamp below:
# any change here rebuilds the cache on the next run.
ROOTFS_INCLUDE=systemd,systemd-sysv,dbus,iproute2,ca-certificates,ngircd,procps,libcap2-bin
# Runtime dependencies of the .deb, downloaded (not installed) into the cache
# so that `apt install ./sapphire_*.deb` inside resolves them without network.
ROOTFS_PREFETCH="libpurple0 libsasl2-modules openssl"
ROOTFS_STAMP="v3 $SUITE $ROOTFS_INCLUDE $ROOTFS_PREFETCH"

slog() { printf '[system %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { slog "FAIL: $*"; exit 1; }

# The Debian mirror the host's apt already uses (deb822 or one-line format).
host_mirror() {
    local m
    m=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)
    echo "${m:-http://deb.debian.org/debian}"
}

# ensure_rootfs: builds the cached root if missing or stale. Builds into a
# temporary directory and renames, so an interrupted build never leaves a
# half-made cache behind.
ensure_rootfs() {
    mkdir -p "$CACHE_DIR"
    # One builder at a time; others wait and then find the cache ready.
    exec {lock}>"$CACHE_DIR/.lock"
    flock "$lock"
    build_rootfs
    flock -u "$lock"
    exec {lock}>&-
}

build_rootfs() {
    if [ -f "$ROOTFS/.sapphire-stamp" ] && [ "$(cat "$ROOTFS/.sapphire-stamp")" = "$ROOTFS_STAMP" ]; then
        return 0
    fi
    local mirror tmp
    mirror=$(host_mirror)
    mkdir -p "$CACHE_DIR"
    tmp=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
    slog "building Debian 12 root in $tmp from $mirror (cached for later runs)"
    # Two tries: a mirror hiccup should not fail a CI run.
    local try
    for try in 1 2; do
        rm -rf "$tmp/root"
        debootstrap --variant=minbase --include="$ROOTFS_INCLUDE" "$SUITE" "$tmp/root" "$mirror" \
            >"$tmp/debootstrap.log" 2>&1 && break
        tail -n 30 "$tmp/debootstrap.log" >&2
        if [ "$try" = 2 ]; then rm -rf "$tmp"; die "debootstrap failed"; fi
        slog "debootstrap failed; trying again"
        sleep 5
    done
    cat >"$tmp/root/etc/apt/sources.list" <<SRC
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
SRC
    # Package lists + the .deb's dependencies, fetched once, so each run's
    # `apt install ./sapphire_*.deb` works offline inside the container.
    cp /etc/resolv.conf "$tmp/root/etc/resolv.conf"
    local fetch="apt-get clean && apt-get update -q && apt-get install -y -q --download-only --no-install-recommends $ROOTFS_PREFETCH"
    if ! chroot "$tmp/root" sh -c "$fetch" >"$tmp/apt.log" 2>&1 &&
       ! { sleep 5; chroot "$tmp/root" sh -c "$fetch" >"$tmp/apt.log" 2>&1; }; then
        tail -n 30 "$tmp/apt.log" >&2
        rm -rf "$tmp"
        die "fetching packages into the root failed"
    fi
    rm -f "$tmp/root/etc/resolv.conf"
    # A booted system with a stable identity and nothing that waits for a
    # network that is not there.
    echo sapphire-test >"$tmp/root/etc/hostname"
    : >"$tmp/root/etc/machine-id"
    ln -sf /dev/null "$tmp/root/etc/systemd/system/systemd-networkd-wait-online.service"
    # Keep apt from trying the network during the test.
    echo 'Acquire::Languages "none";' >"$tmp/root/etc/apt/apt.conf.d/99sapphire-test"
    echo "$ROOTFS_STAMP" >"$tmp/root/.sapphire-stamp"
    rm -rf "$ROOTFS"
    mv "$tmp/root" "$ROOTFS"
    rm -rf "$tmp"
    slog "cached root ready: $ROOTFS ($(du -sh "$ROOTFS" | cut -f1))"
}

# pebble_deb: prints the path of Debian's pebble package (the ACME test
# server), downloaded once on this host into $CACHE_DIR/debs. It is kept out
# of the cached root so that the root (shared with other branches' runs)
# stays as it is; the ACME part of the test installs it into the run's
# overlay only, which is deleted at the end. About 2.7 MB (12 MB installed).
pebble_deb() {
    local dir=$CACHE_DIR/debs deb
    mkdir -p "$dir"
    deb=$(ls "$dir"/pebble_*.deb 2>/dev/null | tail -n1 || true)
    if [ -z "$deb" ]; then
        (cd "$dir" && apt-get download -q pebble >"$dir/download.log" 2>&1) ||
            { cat "$dir/download.log" >&2; return 1; }
        deb=$(ls "$dir"/pebble_*.deb | tail -n1)
    fi
    echo "$deb"
}

# ---------------------------------------------------------------------------
# Container lifecycle. One container per run: ct_start, ct (run a command
# inside), ct_stop (also installed as an EXIT trap by ct_start).
# ---------------------------------------------------------------------------
CT_RUN=""        # per-run directory (overlay upper/work, mount point, logs)
CT_NSPAWN_PID="" # systemd-nspawn
CT_PID=""        # the container's PID 1 (systemd), as seen from the host
CT_HOSTIF=""     # host side of the veth pair
CT_NAME=""
CT_HOST_IP=""
CT_IP=""         # the container's address, reachable from the host only

# Picks a /30 in 10.213.0.0/16 that no host route overlaps.
pick_subnet() {
    local i a b
    for i in $(seq 1 50); do
        a=$((RANDOM % 256)); b=$(((RANDOM % 64) * 4))
        if ! ip -4 route show | grep -q "^10\.213\.$a\."; then
            CT_HOST_IP=10.213.$a.$((b + 1)); CT_IP=10.213.$a.$((b + 2))
            return 0
        fi
    done
    die "no free /30 for the container network"
}

ct_start() {
    ensure_rootfs
    # The container installs the package's dependencies into its overlay
    # (about 400 MB): say so plainly rather than as dpkg's ENOSPC later.
    local avail
    avail=$(df -P -BM /var/tmp | awk 'NR == 2 { sub("M", "", $4); print $4 }')
    [ "$avail" -ge 1024 ] || die "only ${avail} MiB free in /var/tmp: the container needs at least 1 GiB"
    CT_RUN=$(mktemp -d /var/tmp/sapphire-systest.XXXXXX)
    trap ct_stop EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$CT_RUN/upper" "$CT_RUN/work" "$CT_RUN/root"
    if ! mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$CT_RUN/upper,workdir=$CT_RUN/work" "$CT_RUN/root"; then
        slog "no overlayfs here: copying the cached root instead"
        rm -rf "$CT_RUN/root" "$CT_RUN/upper"
        cp -a --reflink=auto "$ROOTFS" "$CT_RUN/root"
        ln -s root "$CT_RUN/upper"   # logs are collected from upper/
    fi
    pick_subnet
    CT_HOSTIF=spt$(printf %05d $((RANDOM % 100000)))h
    CT_NAME=sapphire-test-${CT_RUN##*.}
    slog "booting $CT_NAME (root: overlay on $ROOTFS, run dir $CT_RUN)"
    ct_boot
}

# ct_boot: starts systemd-nspawn on the prepared root and waits for the boot.
ct_boot() {
    # Without systemd as the host's PID 1 (CI, containers) there is no bus to
    # ask for a scope unit: run in the caller's cgroup instead.
    local keep=()
    [ -d /run/systemd/system ] || keep=(--keep-unit)
    setsid systemd-nspawn --boot --register=no "${keep[@]}" --quiet --console=read-only \
        --machine="$CT_NAME" --hostname=sapphire-test \
        --network-veth-extra="$CT_HOSTIF:host0" \
        --system-call-filter="landlock_create_ruleset landlock_add_rule landlock_restrict_self" \
        -D "$CT_RUN/root" >>"$CT_RUN/console.log" 2>&1 </dev/null &
    CT_NSPAWN_PID=$!
    # The container's PID 1 is the descendant of nspawn that is PID 1 in its
    # own PID namespace.
    local t p
    for t in $(seq 1 100); do
        for p in $(pgrep -P "$CT_NSPAWN_PID" 2>/dev/null) $(pgrep -P "$(pgrep -d, -P "$CT_NSPAWN_PID" 2>/dev/null || echo 0)" 2>/dev/null); do
            if awk '/^NSpid:/ { exit !($NF == 1 && NF > 2) }' "/proc/$p/status" 2>/dev/null; then
                CT_PID=$p; break 2
            fi
        done
        kill -0 "$CT_NSPAWN_PID" 2>/dev/null || { cat "$CT_RUN/console.log" >&2; die "systemd-nspawn exited"; }
        sleep 0.1
    done
    [ -n "$CT_PID" ] || die "container init did not appear"
    # Network: a veth pair private to this run; the container is reachable
    # from the host only.
    ip addr add "$CT_HOST_IP/30" dev "$CT_HOSTIF"
    ip link set "$CT_HOSTIF" up
    # Wait for boot to finish. Early on, systemctl cannot reach PID 1 yet and
    # fails at once; `--wait` then waits for the rest.
    local state="" deadline=$((SECONDS + 180))
    while [ $SECONDS -lt $deadline ]; do
        state=$(timeout 120 nsenter -t "$CT_PID" -a systemctl is-system-running --wait 2>/dev/null || true)
        case "$state" in running|degraded|maintenance|stopping) break ;; esac
        kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
        sleep 0.2
    done
    case "$state" in
        running|degraded) ;;
        *) ct systemctl --failed --no-pager >&2 || true
           die "container did not boot (state: ${state:-none})" ;;
    esac
    ct ip addr add "$CT_IP/30" dev host0
    ct ip link set host0 up
    slog "container up ($state), pid $CT_PID, address $CT_IP"
}

# ct_reboot: `systemctl reboot` inside; nspawn exits (133) when the container
# reboots, so boot the same root again. /run is new, the disk is kept.
ct_reboot() {
    slog "rebooting the container"
    ct systemctl reboot || true
    local t
    for t in $(seq 1 300); do
        kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$CT_NSPAWN_PID" 2>/dev/null && die "container did not go down for the reboot"
    wait "$CT_NSPAWN_PID" 2>/dev/null || true
    CT_NSPAWN_PID="" CT_PID=""
    ct_boot
}

# ct CMD...: runs CMD inside the container (all namespaces, as root).
ct() {
    nsenter -t "$CT_PID" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

ct_stop() {
    local rc=$?
    trap - EXIT
    if [ -n "$CT_NSPAWN_PID" ] && kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
        # SIGTERM asks nspawn for a clean shutdown of the container.
        kill -TERM "$CT_NSPAWN_PID" 2>/dev/null || true
        local t
        for t in $(seq 1 150); do
            kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
            slog "container did not stop in 30 s; killing it"
            # Killing PID 1 of a PID namespace kills everything in it.
            [ -z "$CT_PID" ] || kill -KILL "$CT_PID" 2>/dev/null || true
            kill -KILL "$CT_NSPAWN_PID" 2>/dev/null || true
        fi
        wait "$CT_NSPAWN_PID" 2>/dev/null || true
    fi
    if [ -n "$CT_RUN" ]; then
        if [ -n "${SAPPHIRE_SYSTEST_KEEP_LOGS:-}" ] || [ "$rc" -ne 0 ]; then
            local logs=${SAPPHIRE_SYSTEST_LOGS:-$SAPPHIRE_ROOT/tests/artifacts/system}
            mkdir -p "$logs"
            cp "$CT_RUN/console.log" "$logs/console.log" 2>/dev/null || true
            if [ -d "$CT_RUN/upper/var/log/journal" ]; then
                journalctl -D "$CT_RUN/upper/var/log/journal" --no-pager -o short-precise >"$logs/journal.txt" 2>/dev/null || true
            fi
            slog "logs kept in $logs"
        fi
        if mountpoint -q "$CT_RUN/root"; then
            umount "$CT_RUN/root" || umount -l "$CT_RUN/root" || true
        fi
        mountpoint -q "$CT_RUN/root" || rm -rf --one-file-system "$CT_RUN"
    fi
    CT_NSPAWN_PID=""; CT_PID=""; CT_RUN=""
    return "$rc"
}
