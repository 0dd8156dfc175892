#!/usr/bin/env bash
# The Debian sid chroot in which CPython 3.14 and 3.15 (Debian's GIL builds) build and test this
# checkout: sid is the one reachable source of those interpreters here. Made on first use, outside
# the checkout, and reused after.
#
#   scripts/sid-chroot.sh create                 make it if it is missing (and its venvs' packages)
#   scripts/sid-chroot.sh run 3.14 -- CMD [ARG]  run CMD inside with 3.14's venv first on PATH
#   scripts/sid-chroot.sh path                   print where it is
#
# Where: MEMXX_SID_ROOT, default $HOME/.cache/memxx/sid-chroot. The mirror is the Debian archive
# of the host's own apt sources (its `URIs:` line), read at each creation. While CMD runs, /proc,
# /dev (with /dev/shm and /dev/pts, which multiprocessing and ptys need) and this checkout
# (read-only, at its own path) are bound into the chroot; they are unbound when the script ends,
# however it ends. The build inside goes to /var/tmp/memxx-build in the chroot
# (MEMXX_BUILD_DIR, read by scripts/build.sh), never to the checkout's build/.
# Each interpreter has a venv, /opt/memxx/venv-3.1x, filled by scripts/install-deps.sh run inside
# with that venv's python (again whenever install-deps.sh changes).
# Needs root (chroot, mount): it re-runs itself with sudo otherwise. One invocation at a time per
# chroot (a lock file beside it); another waits.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
root=${MEMXX_SID_ROOT:-$HOME/.cache/memxx/sid-chroot}
versions="3.14 3.15"
# The interpreters, what the build needs before install-deps.sh can run inside (it installs the
# rest of the project's Debian packages itself) and what pip needs to reach PyPI.
include="python3.14-dev,python3.15-dev,python3.14-venv,python3.15-venv,g++,cmake,make,git"
include="$include,ca-certificates,pkg-config,libmimalloc-dev,libgraphviz-dev,nlohmann-json3-dev"
include="$include,catch2"

usage() {
    echo "usage: $0 create | path | run VERSION -- COMMAND [ARG...]   (VERSION: ${versions// /, })" >&2
    exit 2
}

[ $# -gt 0 ] || usage
if [ "$(id -u)" -ne 0 ]; then
    exec sudo --preserve-env=MEMXX_SID_ROOT,HOME "$0" "$@"
fi

# Mount points at or under $1, deepest first.
mounts_under() {
    awk -v r="$1" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

unbind_all() {
    local m
    for m in $(mounts_under "$1"); do
        # Lazily if a process left behind inside still holds it: detached at once either way.
        umount "$m" 2>/dev/null || umount -l "$m"
    done
}

# Removes a folder only when nothing is mounted under it.
remove_unbound() {
    unbind_all "$1"
    if [ -n "$(mounts_under "$1")" ]; then
        echo "error: $1 still has mounts; not removing it" >&2
        exit 1
    fi
    rm -rf --one-file-system "$1"
}

# The Debian archive of the host's apt sources: the first `URIs:` entry (deb822) ending in
# /debian, else the first such `deb` line.
host_mirror() {
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources |
        awk '{ for (i = 2; i <= NF; i++) print $i }' | grep -E '/debian/?$' | head -n 1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -hsE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
            awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }' |
            grep -E '/debian/?$' | head -n 1 || true)
    fi
    if [ -z "$uri" ]; then
        echo "error: no Debian archive (a URIs: entry ending in /debian) in the host's apt sources" >&2
        exit 1
    fi
    echo "$uri"
}

in_chroot() {
    chroot "$1" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 "${@:2}"
}

bind_all() {
    local r=$1
    mount -t proc proc "$r/proc"
    mount --bind /dev "$r/dev"
    mkdir -p "$r/dev/shm" "$r/dev/pts"
    mount --bind /dev/shm "$r/dev/shm"
    mount --bind /dev/pts "$r/dev/pts"
    mkdir -p "$r$top"
    mount --bind "$top" "$r$top"
    mount -o remount,bind,ro "$r$top"
}

make_chroot() {
    local tmp="$root.tmp" mirror start=$SECONDS
    mirror=$(host_mirror)
    [ ! -e "$tmp" ] || remove_unbound "$tmp"
    mkdir -p "$(dirname "$root")"
    echo "== making the sid chroot at $root (debootstrap from $mirror; ~2 minutes, 1.1 GB)"
    if ! debootstrap --variant=minbase --include="$include" sid "$tmp" "$mirror" \
        >"$root.debootstrap.log" 2>&1; then
        tail -n 20 "$root.debootstrap.log" >&2
        unbind_all "$tmp"
        echo "error: debootstrap failed (log: $root.debootstrap.log)" >&2
        exit 1
    fi
    unbind_all "$tmp" # debootstrap mounts /proc and /sys while it works
    # The archive's sid Release file can be past its Valid-Until date: apt inside (and
    # install-deps.sh run inside) must not refuse it.
    echo 'Acquire::Check-Valid-Until "false";' >"$tmp/etc/apt/apt.conf.d/99memxx-valid-until"
    # pip inside reaches PyPI through the same certificate authorities as the host.
    if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
        cp -a /usr/local/share/ca-certificates/. "$tmp/usr/local/share/ca-certificates/"
    fi
    in_chroot "$tmp" update-ca-certificates >/dev/null
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$tmp/etc/pip.conf"
    cp /etc/resolv.conf "$tmp/etc/resolv.conf"
    local v
    for v in $versions; do
        in_chroot "$tmp" "python$v" -m venv "/opt/memxx/venv-$v"
    done
    mv "$tmp" "$root"
    echo "== sid chroot made in $((SECONDS - start)) s"
}

# The venv's packages: install-deps.sh run inside with its python, again when the script changed.
fill_venv() {
    local v=$1 stamp want
    stamp="$root/opt/memxx/venv-$v/.memxx-deps"
    want=$(sha256sum "$here/install-deps.sh" | cut -d' ' -f1)
    [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || return 0
    echo "== packages for $v's venv in the sid chroot (scripts/install-deps.sh inside)"
    run_inside "$v" "$here/install-deps.sh" "/opt/memxx/venv-$v/bin/python"
    echo "$want" >"$stamp"
}

run_inside() {
    local v=$1 cwd=$PWD status=0
    shift
    case "$cwd/" in "$top"/*) ;; *) cwd=$top ;; esac
    bind_all "$root"
    local venv="/opt/memxx/venv-$v"
    chroot "$root" /usr/bin/env -i \
        PATH="$venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" VIRTUAL_ENV="$venv" \
        MEMXX_BUILD_DIR="/var/tmp/memxx-build/$v" ${CI:+CI="$CI"} \
        /bin/bash -c 'cd "$0" && exec "$@"' "$cwd" "$@" || status=$?
    unbind_all "$root"
    return $status
}

command=$1
shift
case "$command" in
path)
    echo "$root"
    exit 0
    ;;
create) [ $# -eq 0 ] || usage ;;
run)
    [ $# -ge 3 ] && [ "$2" = "--" ] || usage
    case " $versions " in *" $1 "*) ;; *) usage ;; esac
    version=$1
    shift 2
    ;;
*) usage ;;
esac

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
if ! flock -n 9; then
    echo "note: another sid-chroot.sh is using $root; waiting for it" >&2
    flock 9
fi
# Whatever ends the script, nothing stays bound into the chroot (or a half-made one).
trap 'unbind_all "$root"; unbind_all "$root.tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -d "$root" ] || make_chroot
for v in $versions; do
    fill_venv "$v"
done
if [ "$command" = run ]; then
    status=0
    run_inside "$version" "$@" || status=$?
    exit $status
fi
