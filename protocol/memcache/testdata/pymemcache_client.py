"""Drives a gokai memcache server with pymemcache; argv: host port. Prints "ok" when every check passes."""
import sys

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheServerError

host, port = sys.argv[1], int(sys.argv[2])
c = Client((host, port), default_noreply=False, connect_timeout=5, timeout=5)


def check(what, got, want):
    if got != want:
        raise SystemExit("%s: got %r, want %r" % (what, got, want))


check("set", c.set("a", b"1", expire=100), True)
check("get", c.get("a"), b"1")
check("get missing", c.get("missing"), None)
check("add existing", c.add("a", b"x"), False)
check("add new", c.add("b", b"2"), True)
check("replace missing", c.replace("zz", b"x"), False)
check("replace", c.replace("b", b"3"), True)
check("append", c.append("b", b"4"), True)
check("prepend", c.prepend("b", b"5"), True)
check("get_many", c.get_many(["a", "b", "missing"]), {"a": b"1", "b": b"534"})
check("incr", c.incr("a", 41), 42)
check("decr", c.decr("a", 100), 0)
check("incr missing", c.incr("missing", 1), None)
value, cas = c.gets("b")
check("gets value", value, b"534")
check("cas stale", c.cas("b", b"x", int(cas) + 1), False)
check("cas", c.cas("b", b"new", cas), True)
check("cas missing", c.cas("missing", b"x", cas), None)
check("get after cas", c.get("b"), b"new")
check("touch", c.touch("b", 10), True)
check("touch missing", c.touch("missing", 10), False)
check("delete", c.delete("b"), True)
check("delete missing", c.delete("b"), False)
check("set_many", c.set_many({"m1": b"x", "m2": b"y"}), [])
check("get_many 2", c.get_many(["m1", "m2"]), {"m1": b"x", "m2": b"y"})
big = b"z" * 100000
check("set big", c.set("big", big), True)
check("get big", c.get("big"), big)
check("version", c.version(), b"1.2.3-test")
stats = c.stats()
check("stats version", stats.get(b"version"), b"1.2.3-test")
check("stats store", b"gokai_keys" in stats, True)
try:
    c.flush_all()
    raise SystemExit("flush_all: no error")
except MemcacheClientError as e:
    check("flush_all error", "flush_all not allowed" in str(e), True)
try:
    c.set("huge", b"h" * (2 << 20))
    raise SystemExit("set huge: no error")
except MemcacheServerError as e:
    check("too large", "object too large" in str(e), True)
check("after errors", c.get("a"), b"0")
# noreply writes, then a read on the same connection.
nr = Client((host, port), default_noreply=True)
nr.set("n", b"quiet")
nr.delete("missing")
check("noreply then get", nr.get("n"), b"quiet")
c.quit()
print("ok")
