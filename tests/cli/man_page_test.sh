#!/usr/bin/env bash
# The man page against the binary and the code. It fails when
#   - a subcommand that `dlock --help` lists (nested ones too) has no .SS heading in it;
#   - an option that `dlock --help` or any `dlock SUB --help` lists is missing from it;
#   - its EXIT STATUS, or the README's exit-code table, lists other codes than
#     include/dlock/error.hpp defines (namespace exit_code);
#   - man(1) warns while rendering it.
# Environment: DLOCK_BIN (the binary), DLOCK_SOURCE_DIR, DLOCK_MAN_PAGE (the page as built).
set -euo pipefail
: "${DLOCK_BIN:?}" "${DLOCK_SOURCE_DIR:?}" "${DLOCK_MAN_PAGE:?}"
. "$DLOCK_SOURCE_DIR/tests/cli/cli_surface.sh"

failures=0
fail() {
    printf 'man page: %s\n' "$*" >&2
    failures=$((failures + 1))
}

# The page as plain words: roff's \- as -, font escapes dropped.
page=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$DLOCK_MAN_PAGE")
[ "$(grep -c '^\.SS ' <<<"$page")" -ge 10 ] || fail "found fewer than 10 .SS headings: not parsed"

checked=0
while IFS= read -r path; do
    if [ -n "$path" ] && ! grep -qE "^\.SS ${path}( |\$)" <<<"$page"; then
        fail "'dlock $path' has no '.SS $path ...' heading in ${DLOCK_MAN_PAGE##*/}"
    fi
    # shellcheck disable=SC2086 # a path is one or two words
    for option in $(dlock_options $path); do
        checked=$((checked + 1))
        grep -qE -- "(^|[^a-zA-Z-])${option}([^a-zA-Z-]|\$)" <<<"$page" ||
            fail "'dlock ${path:+$path }--help' lists $option, the man page does not mention it"
    done
done < <(dlock_command_paths)
[ "$checked" -ge 40 ] || fail "checked only $checked options: --help not parsed"

# The exit codes the code defines, one a line, sorted.
code_codes=$(grep -oE 'inline constexpr int [a-z_]+ = [0-9]+;' \
    "$DLOCK_SOURCE_DIR/include/dlock/error.hpp" | grep -oE '[0-9]+' | sort -un)
[ "$(wc -l <<<"$code_codes")" -ge 8 ] || fail "error.hpp: exit codes not found"
# The man page's: the .B N items of EXIT STATUS.
man_codes=$(sed -n '/^\.SH EXIT STATUS/,/^\.SH [A-Z]/p' <<<"$page" | grep -oE '^\.B [0-9]+$' |
    grep -oE '[0-9]+' | sort -un)
[ "$man_codes" = "$code_codes" ] ||
    fail "EXIT STATUS lists ${man_codes//$'\n'/ }, include/dlock/error.hpp defines ${code_codes//$'\n'/ }"
# The README's: the first cell of each row of its "## Exit codes" table ("126, 127" is two).
readme_codes=$(sed -n '/^## Exit codes$/,/^## /p' "$DLOCK_SOURCE_DIR/README.md" |
    grep -oE '^\| [0-9][0-9, ]* \|' | grep -oE '[0-9]+' | sort -un)
[ "$readme_codes" = "$code_codes" ] ||
    fail "the README's exit codes are ${readme_codes//$'\n'/ }, include/dlock/error.hpp defines ${code_codes//$'\n'/ }"

# Renders cleanly: man's own check of a page (groff warnings on stderr).
if command -v man >/dev/null; then
    warnings=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z \
        "$DLOCK_MAN_PAGE" 2>&1 >/dev/null) || fail "man could not render it"
    [ -z "$warnings" ] || fail "man warns: $warnings"
    grep -q '@[A-Z_]*@' "$DLOCK_MAN_PAGE" && fail "a @VARIABLE@ was not configured"
else
    fail "man is not installed (Debian package man-db)"
fi

[ "$failures" -eq 0 ] || exit 1
echo "man page: $checked options, every subcommand and the exit codes match"
