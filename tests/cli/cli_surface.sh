# shellcheck shell=bash
# What `dlock --help` and every `dlock SUB --help` list: the subcommands and the options a user
# can type. The man page and completion checks compare their files against it. Source it; set
# DLOCK_BIN first.

# dlock_subcommands [SUB...]: the subcommands `dlock SUB... --help` lists, one a line.
dlock_subcommands() {
    "$DLOCK_BIN" "$@" --help | sed -n '/^Subcommands:$/,/^$/p' | awk 'NR > 1 && NF { print $1 }'
}

# dlock_options [SUB...]: the options `dlock SUB... --help` lists (-h and --help included), one
# a line: the first word of each option line, split at its commas.
dlock_options() {
    "$DLOCK_BIN" "$@" --help | awk '/^  -/ { n = split($1, names, ","); for (i = 1; i <= n; i++) print names[i] }'
}

# dlock_command_paths: "" for dlock itself, then every subcommand, nested ones as "invoice
# create", one a line.
dlock_command_paths() {
    local sub nested
    echo ""
    for sub in $(dlock_subcommands); do
        echo "$sub"
        for nested in $(dlock_subcommands "$sub"); do
            echo "$sub $nested"
        done
    done
}
