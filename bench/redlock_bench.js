// node-redlock (with ioredis) on the same servers as dlock_quorum_bench, for scripts/bench.
//
//   node redlock_bench.js CYCLES|paused WORKERS SECONDS TIMEOUT_MS SOCKET1 SOCKET2 SOCKET3 ...
//
// Prints the same key=value pairs (times in microseconds): quorum_acquire and quorum_cycle
// (median of CYCLES uncontended lock + unlock), contended_per_s (WORKERS Redlock instances,
// each with its own connections, taking one key and releasing it at once for SECONDS), or with
// "paused" paused_answer: one lock + unlock while the first server is paused (CLIENT PAUSE).
// ioredis gets TIMEOUT_MS as its commandTimeout (without one, a paused server is waited for as
// long as it stays paused). Redlock's own settings are its defaults, but for retryCount in the
// contended run (it retries every 200 +/- 200 ms until it gets the lock).
"use strict";
const Redis = require("ioredis");
const Redlock = require("redlock");

const [mode, workersText, secondsText, timeoutText, ...sockets] = process.argv.slice(2);
const workers = Number(workersText);
const seconds = Number(secondsText);
const timeout = Number(timeoutText);

function clients() {
  return sockets.map((path) => new Redis({ path, commandTimeout: timeout, lazyConnect: false }));
}
function micros(start) {
  return Number((process.hrtime.bigint() - start) / 1000n);
}
function median(values) {
  values.sort((a, b) => a - b);
  return values[Math.floor(values.length / 2)];
}
async function cycles(redlock, count) {
  const acquires = [];
  const whole = [];
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    const lock = await redlock.lock("redlock:uncontended", 10000);
    acquires.push(micros(start));
    await lock.unlock();
    whole.push(micros(start));
  }
  return [median(acquires), median(whole)];
}

async function main() {
  if (mode === "paused") {
    const own = clients();
    const redlock = new Redlock(own, { retryCount: 0 });
    await cycles(redlock, 2);
    const admin = new Redis({ path: sockets[0] });
    await admin.call("CLIENT", "PAUSE", String(timeout * 4), "ALL");
    const start = process.hrtime.bigint();
    let acquired = 0;
    try {
      const lock = await redlock.lock("redlock:paused", 10000);
      acquired = 1;
      await lock.unlock().catch(() => {});
    } catch (e) {}
    const took = micros(start);
    await admin.call("CLIENT", "UNPAUSE");
    console.log(`paused_answer=${took} acquired=${acquired}`);
    [...own, admin].forEach((c) => c.disconnect());
    return;
  }
  const own = clients();
  const redlock = new Redlock(own, { retryCount: 0 });
  await cycles(redlock, 5);
  const [acquire, cycle] = await cycles(redlock, Number(mode));
  let entries = 0;
  let stop = false;
  const all = [];
  const runs = [];
  for (let w = 0; w < workers; w++) {
    const mine = clients();
    all.push(...mine);
    const locks = new Redlock(mine, { retryCount: 1000000 });
    runs.push(
      (async () => {
        while (!stop) {
          const lock = await locks.lock("redlock:contended", 10000);
          await lock.unlock();
          entries++;
        }
      })()
    );
  }
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  stop = true;
  await Promise.all(runs);
  console.log(
    `quorum_acquire=${acquire} quorum_cycle=${cycle} contended_per_s=${Math.round(entries / seconds)}`
  );
  [...own, ...all].forEach((c) => c.disconnect());
}
main().catch((e) => {
  console.error(`redlock_bench: ${e.message}`);
  process.exit(1);
});
