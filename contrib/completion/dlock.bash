# bash completion for dlock(1). Installed as share/bash-completion/completions/dlock, where
# bash-completion loads it the first time dlock is completed; or source it from ~/.bashrc.
# Written by hand; tests/cli/completion_test.sh checks it against every `dlock ... --help`.

_dlock() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local global_options="--redis --timeout --prefix --layout --json -v --verbose -q --quiet -E
        --conflict-exit-code --db --config --tls-ca --tls-cert --tls-key --tls-server-name --replicas
        -h --help -V --version"
    # Options that take a value: the word after them is that value, not a subcommand.
    local with_value="--redis --timeout --prefix -E --conflict-exit-code --db --config --layout
        --tls-ca --tls-cert --tls-key --tls-server-name --replicas
        --ttl --wait --owner --kill-grace -c --account --amount --idempotency-key --fence
        --lock-key --limit --db-busy-timeout --db-retry --hold"
    local ledger_options="--db-busy-timeout --db-retry"

    # The subcommand (and invoice's), and whether `run` has reached its command's `--`.
    local i word command="" subcommand=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if [[ $word == -- && $command == run ]]; then
            if ((i + 1 == COMP_CWORD)); then
                COMPREPLY=($(compgen -c -- "$cur"))
            else
                compopt -o filenames 2>/dev/null
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
            return 0
        fi
        if [[ " ${with_value//$'\n'/ } " == *" $word "* ]]; then
            ((i++))
        elif [[ $word != -* ]]; then
            if [[ -z $command ]]; then
                command=$word
            elif [[ $command == invoice && -z $subcommand ]]; then
                subcommand=$word
            fi
        fi
    done

    # The value of an option: files where it names one, the fixed set where there is one.
    case $prev in
    --db | --config | --tls-ca | --tls-cert | --tls-key)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        return 0
        ;;
    --layout)
        COMPREPLY=($(compgen -W "dlock plain" -- "$cur"))
        return 0
        ;;
    --wait)
        COMPREPLY=($(compgen -W "inf" -- "$cur"))
        return 0
        ;;
    --redis)
        COMPREPLY=($(compgen -W "redis:// rediss:// unix:// redis+cluster:// rediss+cluster://" -- "$cur"))
        compopt -o nospace 2>/dev/null
        return 0
        ;;
    -c)
        return 0
        ;;
    esac
    if [[ " ${with_value//$'\n'/ } " == *" $prev "* ]]; then
        return 0 # a duration, an id, an amount, a token: nothing to offer
    fi

    local options=""
    case $command in
    "")
        if [[ $cur != -* ]]; then
            COMPREPLY=($(compgen -W "acquire block release force-release status list watch extend run config
                deposit withdraw balance history verify invoice" -- "$cur"))
            return 0
        fi
        ;;
    acquire) options="--ttl" ;;
    block) options="--ttl --wait" ;;
    release) options="--owner" ;;
    extend) options="--owner --ttl" ;;
    force-release) options="--owner" ;;
    status | list | watch | config) ;;
    run) options="--ttl --wait -n --nonblock --kill-grace -c --" ;;
    deposit) options="--account --amount --idempotency-key --hold $ledger_options" ;;
    withdraw)
        options="--account --amount --wait --ttl --idempotency-key --no-lock --fence --lock-key
            --hold $ledger_options"
        ;;
    balance) options="--account $ledger_options" ;;
    history) options="--account --limit $ledger_options" ;;
    verify) options="$ledger_options" ;;
    invoice)
        case $subcommand in
        "")
            if [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "create process" -- "$cur"))
                return 0
            fi
            ;;
        create) options="--account --amount $ledger_options" ;;
        process) options="--ttl --hold $ledger_options" ;;
        esac
        ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options $global_options" -- "$cur"))
    fi
    return 0
}
complete -F _dlock dlock
