#!/usr/bin/python3
"""redis-py's own Lock (Debian's python3-redis), for the interop tests: the lock a Python app
takes with redis.Redis(...).lock(NAME). The name is the Redis key itself.

    redis_py_lock.py URL NAME hold TTL FIFO   acquire; print "held TOKEN"; wait for a line on
                                              FIFO; release; print "released true|false"
    redis_py_lock.py URL NAME get TTL         one attempt; print "true TOKEN" (kept) or "false"
    redis_py_lock.py URL NAME block TTL WAIT  one attempt, then "waiting" and up to WAIT s;
                                              print "acquired MS" (Unix ms) or "timeout"; release
    redis_py_lock.py URL NAME worker N COUNTER  N locked read-modify-writes of COUNTER
"""
import sys
import time

import redis
from redis.exceptions import LockNotOwnedError


def say(line):
    print(line, flush=True)


def main():
    url, name, mode, *args = sys.argv[1:]
    client = redis.Redis.from_url(url)
    if mode == "hold":
        lock = client.lock(name, timeout=float(args[0]))
        if not lock.acquire(blocking=False):
            say("busy")
            return 1
        say("held " + lock.local.token.decode())
        with open(args[1]) as fifo:
            fifo.readline()  # the caller's signal to let go
        try:
            lock.release()
            say("released true")
        except LockNotOwnedError:
            say("released false")
    elif mode == "get":
        lock = client.lock(name, timeout=float(args[0]))
        say("true " + lock.local.token.decode() if lock.acquire(blocking=False) else "false")
    elif mode == "block":
        lock = client.lock(name, timeout=float(args[0]))
        if not lock.acquire(blocking=False):
            say("waiting")
            if not lock.acquire(blocking_timeout=float(args[1])):
                say("timeout")
                return 1
        say("acquired %d" % (time.time() * 1000))
        lock.release()
    elif mode == "worker":
        for _ in range(int(args[0])):
            with client.lock(name, timeout=10, blocking_timeout=10):
                with open(args[1]) as f:
                    value = int(f.read() or 0)
                time.sleep(0.002)
                with open(args[1], "w") as f:
                    f.write(str(value + 1))
    else:
        print("usage: redis_py_lock.py URL NAME hold|get|block|worker ARGS...", file=sys.stderr)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main())
