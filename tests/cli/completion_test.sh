#!/usr/bin/env bash
# The shell completions against the binary: each script loads in its shell, completes
# `dlock ac<TAB>` to acquire and `dlock run --w<TAB>` to --wait, and knows every subcommand and
# option that `dlock --help` and every `dlock SUB --help` list. bash and fish are asked for real
# completions (compgen's machinery; fish's complete -C); zsh runs its completion system in a
# pseudo-terminal. File names are offered after --db.
# Environment: DLOCK_BIN (the binary), DLOCK_SOURCE_DIR.
set -euo pipefail
: "${DLOCK_BIN:?}" "${DLOCK_SOURCE_DIR:?}"
. "$DLOCK_SOURCE_DIR/tests/cli/cli_surface.sh"
completions=$DLOCK_SOURCE_DIR/contrib/completion

failures=0
fail() {
    printf 'completion: %s\n' "$*" >&2
    failures=$((failures + 1))
}
# expect SHELL LINE WANTED OFFERED: WANTED (words) must all be among OFFERED (one a line).
expect() {
    local word
    for word in $3; do
        grep -qxF -- "$word" <<<"$4" || fail "$1: '$2<TAB>' does not offer $word"
    done
}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
touch ledger.db

# bash: what the function `complete -p dlock` names puts in COMPREPLY for LINE<TAB>.
bash_complete() {
    bash --norc --noprofile -c '
        . "$1"
        line=$2
        function=$(complete -p dlock | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
        [ -n "$function" ] || { echo "no complete -F for dlock" >&2; exit 1; }
        read -ra COMP_WORDS <<<"$line"
        [ "${line: -1}" = " " ] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) COMP_LINE=$line COMP_POINT=${#line}
        "$function" dlock "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        printf "%s\n" "${COMPREPLY[@]}"' bash "$completions/dlock.bash" "$1"
}
fish_complete() { fish --no-config -c "source $completions/dlock.fish; complete -C '$1'" | cut -f1; }

subcommands=$(dlock_subcommands)
for shell in bash fish; do
    if ! command -v "$shell" >/dev/null; then
        fail "$shell is not installed (scripts/test installs it)"
        continue
    fi
    offered=$("${shell}_complete" "dlock ac") || fail "$shell: the script does not load"
    [ "$offered" = acquire ] || fail "$shell: 'dlock ac<TAB>' offers '$offered', not acquire"
    offered=$("${shell}_complete" "dlock run --w")
    [ "$offered" = --wait ] || fail "$shell: 'dlock run --w<TAB>' offers '$offered', not --wait"
    expect "$shell" "dlock " "$subcommands" "$("${shell}_complete" "dlock ")"
    expect "$shell" "dlock --json " "$subcommands" "$("${shell}_complete" "dlock --json ")"
    expect "$shell" "dlock invoice " "$(dlock_subcommands invoice)" \
        "$("${shell}_complete" "dlock invoice ")"
    expect "$shell" "dlock withdraw --db " "ledger.db" "$("${shell}_complete" "dlock withdraw --db ")"
    expect "$shell" "dlock run --wait " "inf" "$("${shell}_complete" "dlock run --wait ")"
    while IFS= read -r path; do
        [ "$path" = invoice ] && continue # only its subcommands take options
        # shellcheck disable=SC2086 # a path is one or two words
        expect "$shell" "dlock ${path:+$path }--" "$(dlock_options $path | grep -- '^--')" \
            "$("${shell}_complete" "dlock ${path:+$path }--")"
    done < <(dlock_command_paths)
done

# zsh: the real completion system, in a pseudo-terminal; each line ends when the expected
# word shows up, or after 10 seconds.
if command -v zsh >/dev/null; then
    zsh -n "$completions/_dlock" || fail "zsh: _dlock does not parse"
    zsh_complete() {
        zsh -f -c '
            zmodload zsh/zpty
            zpty z "zsh -f -i"
            zpty -w z "PS1=\"> \"; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D"
            zpty -w -n z "$2"$'"'"'\t'"'"'
            out="" deadline=$((SECONDS + 10))
            while ((SECONDS < deadline)) && [[ $out != *$3* ]]; do
                zpty -r -t z chunk && out+=$chunk || sleep 0.05
            done
            zpty -d z
            [[ $out == *$3* ]]' zsh "$completions" "$1" "$2"
    }
    zsh_complete "dlock ac" "dlock acquire" || fail "zsh: 'dlock ac<TAB>' does not complete to acquire"
    zsh_complete "dlock run --w" "--wait" || fail "zsh: 'dlock run --w<TAB>' does not offer --wait"
    zsh_complete "dlock withdraw --db led" "ledger.db" ||
        fail "zsh: 'dlock withdraw --db led<TAB>' does not offer ledger.db"
    # Every subcommand and option, in the script's text.
    while IFS= read -r path; do
        # shellcheck disable=SC2086 # a path is one or two words
        for word in ${path##* } $(dlock_options $path | grep -- '^--'); do
            [ -n "$word" ] && ! grep -qE -- "(^|[^a-z-])${word}([^a-z-]|\$)" "$completions/_dlock" &&
                fail "zsh: _dlock does not know '${word}' (dlock ${path:+$path })"
        done
    done < <(dlock_command_paths)
else
    fail "zsh is not installed (scripts/test installs it)"
fi

[ "$failures" -eq 0 ] || exit 1
echo "completion: bash, fish and zsh know every subcommand and option"
