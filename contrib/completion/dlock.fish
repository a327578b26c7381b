# fish completion for dlock(1). Installed as share/fish/vendor_completions.d/dlock.fish.
# Written by hand; tests/cli/completion_test.sh checks it against every `dlock ... --help`.

set -l commands acquire block release force-release status list watch extend run config deposit withdraw balance history verify invoice
set -l no_command "not __fish_seen_subcommand_from $commands"

# dlock's own arguments are keys, ids and amounts, not files.
complete -c dlock -f

complete -c dlock -n $no_command -a acquire -d 'Take KEY once, without waiting'
complete -c dlock -n $no_command -a block -d 'Take KEY, waiting until it is free'
complete -c dlock -n $no_command -a release -d 'Release KEY if --owner still owns it'
complete -c dlock -n $no_command -a force-release -d 'Release KEY whoever holds it'
complete -c dlock -n $no_command -a status -d 'Show who holds KEY, since when, its TTL and fence'
complete -c dlock -n $no_command -a list -d 'List the held locks: holder, age, TTL, fence'
complete -c dlock -n $no_command -a watch -d 'Print each event of the matching locks as it happens'
complete -c dlock -n $no_command -a config -d 'Print the effective settings and their sources'
complete -c dlock -n $no_command -a extend -d 'Reset the TTL of KEY if --owner owns it'
complete -c dlock -n $no_command -a run -d 'Run a command while holding KEY'
complete -c dlock -n $no_command -a deposit -d 'Credit an account'
complete -c dlock -n $no_command -a withdraw -d 'Debit an account under its lock'
complete -c dlock -n $no_command -a balance -d 'Print the balance of an account'
complete -c dlock -n $no_command -a history -d 'List the latest journal entries'
complete -c dlock -n $no_command -a verify -d 'Check every balance against its journal'
complete -c dlock -n $no_command -a invoice -d 'Create or process invoices'

# Global options, before or after the subcommand.
complete -c dlock -l redis -x -a 'redis:// rediss:// unix:// redis+cluster:// rediss+cluster:// redis+sentinel:// rediss+sentinel://' -d 'Redis URL (or DLOCK_REDIS_URL)'
complete -c dlock -l replicas -x -d 'Count a lock taken only once N replicas acknowledged it'
complete -c dlock -l tls-ca -r -F -d 'rediss://: CA certificates to verify the server with'
complete -c dlock -l tls-cert -r -F -d 'rediss://: client certificate'
complete -c dlock -l tls-key -r -F -d 'rediss://: private key of the client certificate'
complete -c dlock -l tls-server-name -x -d 'rediss://: name the server certificate must carry'
complete -c dlock -l timeout -x -d 'Connect and command timeout (DUR)'
complete -c dlock -l prefix -x -d 'Namespace of every Redis key'
complete -c dlock -l json -d 'Print exactly one JSON object on stdout'
complete -c dlock -s E -l conflict-exit-code -x -d 'Exit code when busy'
complete -c dlock -l db -r -F -d 'Ledger file (or DLOCK_DB)'
complete -c dlock -l config -r -F -d 'Read settings from FILE'
complete -c dlock -l layout -x -a 'dlock plain' -d 'Where a lock lives: PREFIX{KEY} or PREFIX+KEY'
complete -c dlock -s v -l verbose -d 'Say what dlock does and whom it waits for'
complete -c dlock -s q -l quiet -d 'Nothing on stderr but errors'
complete -c dlock -s h -l help -d 'Print the help and exit'
complete -c dlock -s V -l version -d 'Print the version and exit'

# Lock commands and run.
complete -c dlock -n '__fish_seen_subcommand_from acquire block extend run withdraw' -l ttl -x -d 'Lease length (DUR)'
complete -c dlock -n '__fish_seen_subcommand_from block run withdraw' -l wait -x -a inf -d 'Longest wait (DUR, or inf)'
complete -c dlock -n '__fish_seen_subcommand_from release extend force-release' -l owner -x -d 'Owner token'
complete -c dlock -n '__fish_seen_subcommand_from run' -s n -l nonblock -d 'One attempt, no waiting'
complete -c dlock -n '__fish_seen_subcommand_from run' -l kill-grace -x -d 'Wait between SIGTERM and SIGKILL'
complete -c dlock -n '__fish_seen_subcommand_from run' -s c -x -d 'Run this with /bin/sh -c'

# Ledger commands.
set -l ledger deposit withdraw balance history verify create process
complete -c dlock -n "__fish_seen_subcommand_from deposit withdraw balance history create" -l account -x -d 'Account id'
complete -c dlock -n "__fish_seen_subcommand_from deposit withdraw create" -l amount -x -d 'Amount, up to two decimals'
complete -c dlock -n "__fish_seen_subcommand_from deposit withdraw" -l idempotency-key -x -d 'A repeat moves no money'
complete -c dlock -n "__fish_seen_subcommand_from deposit withdraw process" -l hold -x -d 'Sleep while holding (DUR)'
complete -c dlock -n "__fish_seen_subcommand_from withdraw" -l no-lock -d 'UNSAFE race demo: no lock'
complete -c dlock -n "__fish_seen_subcommand_from withdraw" -l fence -x -d 'Fencing token of a held lock'
complete -c dlock -n "__fish_seen_subcommand_from withdraw" -l lock-key -x -d 'KEY of that lock'
complete -c dlock -n "__fish_seen_subcommand_from history" -l limit -x -d 'How many entries'
complete -c dlock -n "__fish_seen_subcommand_from process" -l ttl -x -d "Lease length of the invoice's lock"
complete -c dlock -n "__fish_seen_subcommand_from $ledger" -l db-busy-timeout -x -d 'SQLite wait per attempt (DUR)'
complete -c dlock -n "__fish_seen_subcommand_from $ledger" -l db-retry -x -d 'Retry a busy ledger this long (DUR)'
complete -c dlock -n "__fish_seen_subcommand_from invoice; and not __fish_seen_subcommand_from create process" -a create -d 'Open an invoice'
complete -c dlock -n "__fish_seen_subcommand_from invoice; and not __fish_seen_subcommand_from create process" -a process -d 'Charge an invoice once'
