#!/usr/bin/env python3
# Writes the seed logs of tests/fuzz/corpus/log_verify_fuzz: chains in the format of
# src/events/log_format.h (canonical JSON: sorted keys, compact, ASCII only; hash over the
# record without "hash"; prev/seq chaining), with checkpoints signed by the key that
# log_verify_fuzz.cpp derives from the same published seed, so that the fuzzer starts from
# logs that verify and from the classic tamperings of them. Needs python3-cryptography.
# The seed is public by design: it only lets these test logs verify.
import hashlib, json, os
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

seed = hashlib.sha256(b"torii log_verify_fuzz checkpoint key").digest()
key = Ed25519PrivateKey.from_private_bytes(seed)
Z = "0" * 64

def dump(r):
    return json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

def seal(r):
    r = dict(r); r.pop("hash", None)
    r["hash"] = hashlib.sha256(dump(r).encode()).hexdigest()
    return r

class Chain:
    def __init__(self, seq=1, prev=Z, ms=0):
        self.seq, self.prev, self.ms, self.lines = seq, prev, ms, []
    def ts(self):
        self.ms += 1234
        s, ms = divmod(self.ms, 1000)
        return "2026-11-22T03:%02d:%02d.%03dZ" % (s // 60 % 60, s % 60, ms)
    def add(self, r):
        r["seq"], r["prev"] = self.seq, self.prev
        r = seal(r)
        self.lines.append(dump(r)); self.prev = r["hash"]; self.seq += 1
        return r
    def event(self, actor, action, obj="", outcome="success", source="local", details=None):
        return self.add({"type": "event", "ts": self.ts(), "actor": actor, "action": action, "object": obj,
                         "outcome": outcome, "source": source, "details": details or {}})
    def checkpoint(self):
        msg = b"torii-log-checkpoint\0" + str(self.seq).encode() + b"\0" + self.prev.encode()
        return self.add({"type": "checkpoint", "ts": self.ts(), "head": self.prev, "sig": key.sign(msg).hex()})
    def text(self):
        return "".join(l + "\n" for l in self.lines)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "log_verify_fuzz")
def write(name, text):
    open(os.path.join(out, name), "w").write(text)

c = Chain()
c.event("system", "server.start", details={"version": "0.1.0"})
c.event("device:sensor-42", "login.failed", "device:sensor-42", "failure", "203.0.113.5:51234", {"reason": "bad certificate"})
c.event("admin-cli", "device.enrolled", "device:sensor-42", details={"serial": "1a2b"})
c.checkpoint()
c.event("user:1", "firewall.ban", "source:203.0.113.5", "denied", "203.0.113.5:51240", {"failures": 10, "nested": {"a": [1, 2]}})
write("valid_signed.log", c.text())

# Same log with the last event edited in place (hash no longer recomputes).
lines = c.text().splitlines()
write("edited_line.log", "\n".join(lines[:-1] + [lines[-1].replace("firewall.ban", "firewall.unban")]) + "\n")
# Two lines swapped.
write("swapped.log", "\n".join([lines[0], lines[2], lines[1]] + lines[3:]) + "\n")
# Torn last line.
write("torn_tail.log", c.text()[:-40])

# After retention: starts at seq 57 with a non-zero prev; checkpoint at the end.
r = Chain(seq=57, prev=hashlib.sha256(b"older").hexdigest(), ms=500000)
r.event("system", "log.retention.deleted", "file:security-20251101T000000000Z.log", details={"bytes": 4096})
r.event("system", "server.stop", details={})
r.checkpoint()
write("after_retention.log", r.text())

# Non-ASCII escaped, as canonical_dump writes it; and a checkpoint signed by another key.
u = Chain()
u.event("user:\u00e9l\u00e8ve", "login.succeeded", "console", "success", "[2001:db8::5]:443", {"agent": "\u202eevil"})
e = u.checkpoint()
bad = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"some other key").digest())
cp_lines = u.lines[:]
rec = json.loads(cp_lines[-1]); rec["sig"] = bad.sign(b"x").hex(); rec = seal(rec)
cp_lines[-1] = dump(rec)
write("unicode_and_foreign_sig.log", "".join(l + "\n" for l in cp_lines))

write("not_json.log", "hello\n{\"seq\":1}\n[]\n{\"type\":\"event\"\n")
write("empty.log", "")
