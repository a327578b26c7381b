<?php
// Laravel's own Cache::lock, from Debian's php-illuminate-cache and php-illuminate-redis, for
// the interop tests, the demo and the bench: the lock a Laravel app takes, with no framework
// boot. A Repository over a RedisStore over phpredis, configured with Laravel's defaults, so
// a lock NAME lives at REDIS_PREFIX . CACHE_PREFIX . ':' . NAME.
//
//   php laravel_lock.php MODE ARGS...      (NAME from LOCK_NAME, default withdraw_funds_user_5)
//   hold TTL FIFO        get(); prints "held OWNER"; waits for a line on FIFO; release(),
//                        prints "released true|false"
//   get TTL              get(); prints "true OWNER" (and keeps the lock) or "false"
//   block TTL WAIT       get(), and when that fails prints "waiting" and block(WAIT); prints
//                        "acquired MS" (Unix ms) or "timeout"; releases
//   release OWNER        restoreLock(NAME, OWNER)->release(); prints "true" or "false"
//   worker N COUNTER     N times block(10, fn) around a slow read-modify-write of COUNTER
//   run WAIT CMD ARGS... block(WAIT, fn) around running CMD: one critical section, as
//                        scripts/bench runs one with each wrapper; exits with CMD's status
//   withdraw USER AMOUNT [HOLD]  the lesson's WithdrawFunds: block(5) on
//                        withdraw_funds_user_USER; inside, prints "held" and runs `dlock withdraw
//                        --no-lock [--hold HOLD]` (DLOCK_BIN) on the ledger; prints the answer
//
// Environment: REDIS_HOST (127.0.0.1, or a unix socket path), REDIS_PORT (6379), REDIS_PASSWORD,
// REDIS_PREFIX (laravel_database_), CACHE_PREFIX (laravel_cache): Laravel 8's defaults.

require_once 'Illuminate/Cache/autoload.php';
require_once 'Illuminate/Redis/autoload.php';

use Illuminate\Cache\RedisStore;
use Illuminate\Cache\Repository;
use Illuminate\Contracts\Cache\LockTimeoutException;
use Illuminate\Redis\RedisManager;

function env_or(string $name, string $default): string
{
    $value = getenv($name);
    return $value === false ? $default : $value;
}

function now_ms(): int
{
    return (int) floor(microtime(true) * 1000);
}

function say(string $line): void
{
    echo $line, "\n";
    flush();
}

$redis = new RedisManager(null, 'phpredis', [
    'options' => ['prefix' => env_or('REDIS_PREFIX', 'laravel_database_')],
    'default' => [
        'host' => env_or('REDIS_HOST', '127.0.0.1'),
        'port' => (int) env_or('REDIS_PORT', '6379'),
        'password' => env_or('REDIS_PASSWORD', '') ?: null,
        'database' => 0,
    ],
]);
// Cache::store('redis'): what the Cache facade hands a Laravel app.
$cache = new Repository(new RedisStore($redis, env_or('CACHE_PREFIX', 'laravel_cache')));
$name = env_or('LOCK_NAME', 'withdraw_funds_user_5');
$mode = $argv[1] ?? '';

switch ($mode) {
    case 'hold':
        $lock = $cache->lock($name, (int) $argv[2]);
        if (!$lock->get()) {
            say('busy');
            exit(1);
        }
        say('held ' . $lock->owner());
        fgets(fopen($argv[3], 'r')); // the caller's signal to let go
        say('released ' . ($lock->release() ? 'true' : 'false'));
        break;

    case 'get':
        $lock = $cache->lock($name, (int) $argv[2]);
        say($lock->get() ? 'true ' . $lock->owner() : 'false');
        break;

    case 'block':
        $lock = $cache->lock($name, (int) $argv[2]);
        try {
            if (!$lock->get()) {
                say('waiting');
                $lock->block((int) $argv[3]);
            }
        } catch (LockTimeoutException $e) {
            say('timeout');
            exit(1);
        }
        say('acquired ' . now_ms());
        $lock->release();
        break;

    case 'release':
        say($cache->restoreLock($name, $argv[2])->release() ? 'true' : 'false');
        break;

    case 'worker':
        // Read, think, write: without mutual exclusion, concurrent workers lose increments.
        for ($i = 0; $i < (int) $argv[2]; $i++) {
            $cache->lock($name, 10)->block(10, function () use ($argv) {
                $value = (int) file_get_contents($argv[3]);
                usleep(2000);
                file_put_contents($argv[3], (string) ($value + 1));
            });
        }
        break;

    case 'run':
        $command = array_slice($argv, 3);
        $status = $cache->lock($name, 10)->block((int) $argv[2], function () use ($command) {
            return proc_close(proc_open($command, [STDIN, STDOUT, STDERR], $pipes));
        });
        exit($status);

    case 'withdraw':
        // The lesson's WithdrawFunds job, as a Laravel app writes it.
        [$userId, $amount, $hold] = [$argv[2], $argv[3], $argv[4] ?? '0s'];
        $debit = function () use ($userId, $amount, $hold) {
            say('held');
            exec(escapeshellarg(env_or('DLOCK_BIN', 'dlock')) . ' withdraw --no-lock'
                . ' --account ' . escapeshellarg($userId) . ' --amount ' . escapeshellarg($amount)
                . ' --hold ' . escapeshellarg($hold) . ' 2>&1', $out, $rc);
            return $rc === 0 ? 'paid' : 'refused: ' . implode(' ', $out);
        };
        try {
            $answer = $cache->lock("withdraw_funds_user_{$userId}", 10)->block(5, $debit);
        } catch (LockTimeoutException $e) {
            $answer = 'System busy, please try again.';
        }
        say($answer);
        break;

    default:
        fwrite(STDERR, "usage: laravel_lock.php hold|get|block|release|worker|run|withdraw ARGS...\n");
        exit(64);
}
