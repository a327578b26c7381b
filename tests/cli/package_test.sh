#!/usr/bin/env bash
# The Debian package, checked the way an operator uses it: its control fields and file list, then
# `dpkg --root` installs it into a throwaway root, where the packaged dlock answers --version
# and runs the README's quick tour against a private redis-server, man renders its page and bash
# loads its completion; `dpkg -r` then removes every file it installed.
#   tests/cli/package_test.sh DEB      check a built package (scripts/package --check)
#   tests/cli/package_test.sh          build one first with cpack, from $DLOCK_BUILD_DIR (ctest)
# Environment: DLOCK_SOURCE_DIR; DLOCK_VERSION (project()'s, to compare).
set -euo pipefail
: "${DLOCK_SOURCE_DIR:?}"
. "$DLOCK_SOURCE_DIR/scripts/lib/common.sh"

failures=0
fail() {
    printf 'package: %s\n' "$*" >&2
    failures=$((failures + 1))
}

scratch=$(mktemp -d)
cleanup() {
    stop_redis
    rm -rf "$scratch"
}
trap cleanup EXIT

deb=${1:-}
if [ -z "$deb" ]; then
    cpack -G DEB --config "${DLOCK_BUILD_DIR:?}/CPackConfig.cmake" -B "$scratch/cpack" >/dev/null
    deb=$(echo "$scratch"/cpack/dlock_*.deb)
fi
[ -f "$deb" ] || { fail "no package: $deb"; exit 1; }
arch=$(dpkg --print-architecture)
case ${deb##*/} in
dlock_"${DLOCK_VERSION:-}"*_"$arch".deb | dlock_*_"$arch".deb) ;;
*) fail "${deb##*/} is not named dlock_<version>_$arch.deb" ;;
esac

# Control fields.
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = dlock ] || fail "Package is '$(field Package)'"
[ -z "${DLOCK_VERSION:-}" ] || [ "$(field Version)" = "$DLOCK_VERSION" ] ||
    fail "Version is '$(field Version)', project() says $DLOCK_VERSION"
[[ $(field Depends) == *libc6* ]] || fail "Depends '$(field Depends)' does not name libc6 (shlibdeps)"
# dlock loads these itself when a command needs them, where shlibdeps cannot see it.
for library in libssl3 libpq5; do
    [[ $(field Recommends) == *"$library"* ]] || fail "Recommends '$(field Recommends)' does not name $library"
done
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
[ "$(field Description | wc -l)" -ge 3 ] || fail "the Description is not a summary and a text"

# The file list: exactly the install layout, nothing else (no tests, no bench, no library).
expected="./usr/bin/dlock
./usr/share/bash-completion/completions/dlock
./usr/share/doc/dlock/LICENSE
./usr/share/doc/dlock/README.md
./usr/share/doc/dlock/copyright
./usr/share/fish/vendor_completions.d/dlock.fish
./usr/share/man/man1/dlock.1
./usr/share/zsh/vendor-completions/_dlock"
files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sort)
absent=$(comm -23 <(echo "$expected") <(echo "$files"))
[ -z "$absent" ] || fail "missing from the package: ${absent//$'\n'/ }"
strays=$(grep -vE '^\./usr/(bin/dlock|share/(bash-completion/completions/dlock|fish/vendor_completions\.d/dlock\.fish|man/man1/dlock\.1|zsh/vendor-completions/_dlock|doc/dlock/.*))$' <<<"$files" || true)
[ -z "$strays" ] || fail "not part of the install layout: ${strays//$'\n'/ }"
grep -q '^\./usr/share/doc/dlock/docs/guarantees\.md$' <<<"$files" || fail "the docs are missing"
grep -q '^\./usr/share/doc/dlock/examples/systemd/dlock-example@\.timer$' <<<"$files" ||
    fail "the systemd examples are missing"

# Install into a throwaway root: dpkg's own bookkeeping, not the machine's.
root=$scratch/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
dpkg_root() { dpkg --root="$root" --force-depends --force-not-root --force-script-chrootless "$@"; }
dpkg_root -i "$deb" >"$scratch/dpkg.log" 2>&1 || { cat "$scratch/dpkg.log" >&2; fail "dpkg -i failed"; exit 1; }
dlock=$root/usr/bin/dlock
version=$("$dlock" --version) || fail "the packaged dlock does not run"
[[ $version == "dlock ${DLOCK_VERSION:-}"* ]] || fail "--version says '$version'"
[ "$("$dlock" -V)" = "$version" ] || fail "-V and --version disagree"

# The quick tour, against a private redis-server.
start_redis "$scratch"
export DLOCK_REDIS_URL=$REDIS_URL
tour() {
    local want=$1
    shift
    local got=0
    "$dlock" "$@" >"$scratch/out" 2>&1 || got=$?
    [ "$got" = "$want" ] || fail "dlock $* exited $got, not $want: $(cat "$scratch/out")"
}
token=$("$dlock" acquire nightly-report --ttl 10m) || fail "acquire failed"
tour 75 acquire nightly-report
tour 0 status nightly-report
tour 0 extend nightly-report --owner "$token" --ttl 10m
tour 0 release nightly-report --owner "$token"
tour 1 status nightly-report
tour 0 block nightly-report --wait 30s
tour 0 force-release nightly-report
tour 0 acquire job --json
grep -q '"status":"acquired"' "$scratch/out" || fail "acquire --json printed $(cat "$scratch/out")"
tour 0 run tour-run -- true
stop_redis

# The man page, through man itself, and the bash completion, as bash-completion loads it.
man_page=$root/usr/share/man/man1/dlock.1
MANWIDTH=80 man -l "$man_page" 2>/dev/null | grep -q 'EXIT STATUS' || fail "man -l does not render $man_page"
completion=$root/usr/share/bash-completion/completions/dlock
[ "$(bash --norc --noprofile -c '. "$1"; COMP_WORDS=(dlock ac); COMP_CWORD=1; _dlock
    echo "${COMPREPLY[*]}"' bash "$completion")" = acquire ] || fail "the bash completion does not load"

# Removal leaves none of its files behind.
dpkg_root -r dlock >"$scratch/dpkg.log" 2>&1 || { cat "$scratch/dpkg.log" >&2; fail "dpkg -r failed"; }
left=$(cd "$root" && find . -path ./var -prune -o -type f -print)
[ -z "$left" ] || fail "dpkg -r left files behind: ${left//$'\n'/ }"

[ "$failures" -eq 0 ] || exit 1
echo "package: ${deb##*/} installs, runs the quick tour, and removes cleanly"
