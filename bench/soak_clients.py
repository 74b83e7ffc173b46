#!/usr/bin/env python3
"""The traffic of bench/soak.sh other than MLLP: a small HTTP server for the wall to publish,
and clients that use the published services through the wall while it is being restarted. Stdlib only.

    soak_clients.py http-server --port P          HTTP/1.1 (keep-alive): GET /blob (256 KiB,
                                                  fixed bytes), GET /small
    soak_clients.py chat --port P --fingerprint SHA256 [--clients N] [--interval S]
                         --duration S [--grace S] --out FILE.json --events FILE
    soak_clients.py tcp --http-port P --echo-port P [--interval S] --duration S
                        --out FILE.json --events FILE

chat: N IRC clients (TLS, the server's certificate pinned) join #soak and each sends a line
`soak SENDER SEQ` every --interval seconds (jittered) while connected; a client whose
connection ends reconnects with backoff (0.2 s doubling to 3 s) under a new nickname and joins
again. After --duration they stop sending, keep reading for --grace seconds, and quit. A line
sent at t by a session is *expected* at every other client that had a session joined before t
(its 366 read) and still connected at t + grace, provided the sender's own session also lived
past t + grace (otherwise the line is "in doubt": the wall may have been cut under it).
Reported: sent, in doubt, expected, received (of the expected), missing, duplicates,
sessions, connect failures.

tcp: three loops through the wall, each one operation every --interval seconds: GET /blob on
a new connection (body checked by SHA-256), GET /small on a kept-alive connection (reopened
after a failure), and an echo of 1 B..64 KiB of random bytes on a kept-alive connection
(checked byte for byte). Failures are recorded with their time; a body or echo that differs
is "corrupt".

Both clients write one line per failure to --events (`epoch=... kind=... error`) and a JSON
summary to --out; the time of every failure is there so that soak.sh can tell failures during
a restart of the wall from the others.
"""
import argparse
import hashlib
import http.client
import json
import random
import select
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOB = random.Random(20261123).randbytes(256 * 1024)
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()
SMALL = b"soak ok\n"


class Events:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", encoding="utf-8")

    def log(self, kind, what):
        t = time.time()
        with self.lock:
            self.f.write("%s epoch=%.3f kind=%s %s\n" % (
                time.strftime("%H:%M:%S", time.gmtime(t)), t, kind, what))
            self.f.flush()


# ------------------------------------------------------------------ servers

class HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "soak/1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        body = BLOB if path == "/blob" else SMALL if path in ("/", "/small") else None
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            self.close_connection = True


def http_server(a):
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), HttpHandler)
    print("ready port=%d" % a.port, flush=True)
    srv.serve_forever()


# ------------------------------------------------------------------ chat

class Chat:
    """Shared by the chat clients: what was sent, what arrived, the sessions."""

    def __init__(self, a, events):
        self.a = a
        self.ev = events
        self.lock = threading.Lock()
        self.sent = {}          # (sender, seq) -> (t, session id)
        self.got = set()        # (receiver, sender, seq)
        self.dups = 0
        self.foreign = 0        # lines that are not ours
        self.sessions = {}      # session id -> [client, t_joined or None, t_end or None]
        self.connect_failures = 0
        self.stop_sending = threading.Event()
        self.stop = threading.Event()
        self.fp = a.fingerprint.replace(":", "").lower()


class ChatClient(threading.Thread):
    def __init__(self, idx, chat):
        super().__init__(daemon=True)
        self.idx = idx
        self.c = chat
        self.seq = 0
        self.nsess = 0
        self.rng = random.Random(1000 + idx)

    def run(self):
        backoff = 0.2
        while not self.c.stop.is_set():
            ok = self.session()
            if self.c.stop.is_set():
                break
            if ok:
                backoff = 0.2
            self.c.stop.wait(backoff * (0.5 + self.rng.random() / 2))
            backoff = min(backoff * 2, 3.0)

    def session(self):
        c = self.c
        self.nsess += 1
        sid = "%d.%d" % (self.idx, self.nsess)
        nick = "soak%dx%d" % (self.idx, self.nsess)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            raw = socket.create_connection(("127.0.0.1", c.a.port), timeout=5)
        except OSError as e:
            with c.lock:
                c.connect_failures += 1
            if c.connect_failures % 20 == 1:
                c.ev.log("chat", "client=%d connect failed: %s" % (self.idx, e))
            return False
        joined = False
        try:
            s = ctx.wrap_socket(raw, server_hostname="chat")
            if hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest() != c.fp:
                c.ev.log("chat", "client=%d certificate fingerprint differs" % self.idx)
                s.close()
                return False
            s.settimeout(10)
            buf = b""

            def send(line):
                s.sendall(line.encode() + b"\r\n")

            send("NICK %s" % nick)
            send("USER soak 0 * :soak client %d" % self.idx)
            deadline = time.monotonic() + 15
            next_send = None
            while not c.stop.is_set():
                now = time.monotonic()
                if not joined and now > deadline:
                    raise OSError("registration or join took over 15 s")
                wait = 1.0
                if joined and next_send is not None and not c.stop_sending.is_set():
                    wait = max(0.0, min(wait, next_send - now))
                if s.pending() == 0:
                    r, _, _ = select.select([s], [], [], wait)
                else:
                    r = [s]
                if r:
                    b = s.recv(65536)
                    if not b:
                        raise OSError("connection closed by the other end")
                    buf += b
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        ans = self.line(line.decode("utf-8", "replace").rstrip("\r"), sid)
                        if ans == "welcome":
                            send("JOIN #soak")
                        elif ans == "joined":
                            with c.lock:
                                c.sessions[sid] = [self.idx, time.time(), None]
                            joined = True
                            next_send = time.monotonic() + self.rng.random() * c.a.interval
                        elif ans and ans.startswith("PONG"):
                            send(ans)
                        elif ans and ans.startswith("ERROR"):
                            raise OSError("server said " + ans[:100])
                if joined and not c.stop_sending.is_set() and time.monotonic() >= next_send:
                    seq = self.seq
                    self.seq += 1
                    t = time.time()
                    send("PRIVMSG #soak :soak %d %d %s" % (self.idx, seq, "x" * (seq % 40)))
                    with c.lock:
                        c.sent[(self.idx, seq)] = (t, sid)
                    next_send += c.a.interval * (0.8 + 0.4 * self.rng.random())
            try:
                send("QUIT :soak over")
            except OSError:
                pass
            s.close()
        except (OSError, ssl.SSLError, ValueError) as e:
            c.ev.log("chat", "client=%d session=%s %s: %s" % (
                self.idx, sid, "ended" if joined else "failed before joining", e))
            try:
                raw.close()
            except OSError:
                pass
        finally:
            with c.lock:
                if sid in c.sessions:
                    c.sessions[sid][2] = time.time()
        return joined

    def line(self, line, sid):
        """What the session should do about one line from the server."""
        if line.startswith("@"):   # tags
            line = line.split(" ", 1)[1] if " " in line else ""
        if line.startswith("PING"):
            return "PONG" + line[4:]
        if line.startswith("ERROR"):
            return line
        parts = line.split(" ", 3)
        if len(parts) >= 2 and parts[1] == "001":
            return "welcome"
        if len(parts) >= 2 and parts[1] == "366":
            return "joined"
        if len(parts) == 4 and parts[1] == "PRIVMSG" and parts[2] == "#soak":
            words = parts[3].lstrip(":").split(" ")
            c = self.c
            if len(words) >= 3 and words[0] == "soak":
                key = (self.idx, int(words[1]), int(words[2]))
                with c.lock:
                    if key in c.got:
                        c.dups += 1
                    c.got.add(key)
            else:
                with c.lock:
                    c.foreign += 1
        return None


def chat_clients(a):
    ev = Events(a.events)
    c = Chat(a, ev)
    clients = [ChatClient(i, c) for i in range(a.clients)]
    for cl in clients:
        cl.start()
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < a.duration:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    c.stop_sending.set()
    time.sleep(a.grace)
    c.stop.set()
    for cl in clients:
        cl.join(timeout=15)
    # what was expected where
    g = a.grace
    with c.lock:
        sessions = {k: list(v) for k, v in c.sessions.items()}
        sent = dict(c.sent)
        got = set(c.got)
    by_client = {}
    for sid, (cl, tj, te) in sessions.items():
        by_client.setdefault(cl, []).append((tj, te if te is not None else float("inf")))
    expected = received = in_doubt = 0
    missing = []
    for (snd, seq), (t, sid) in sent.items():
        te = sessions[sid][2]
        if te is not None and te < t + g:
            in_doubt += 1
            continue
        for r in range(a.clients):
            if r == snd:
                continue
            if not any(tj < t and te2 >= t + g for tj, te2 in by_client.get(r, [])):
                continue
            expected += 1
            if (r, snd, seq) in got:
                received += 1
            else:
                missing.append({"receiver": r, "sender": snd, "seq": seq, "sent_epoch": round(t, 3)})
    out = {
        "clients": a.clients, "interval": a.interval, "grace": g,
        "sent": len(sent), "in_doubt": in_doubt, "expected": expected, "received": received,
        "missing": len(missing), "missing_first": missing[:20], "received_total": len(got),
        "duplicates": c.dups, "foreign_lines": c.foreign, "sessions": len(sessions),
        "connect_failures": c.connect_failures,
    }
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    for m in missing[:20]:
        ev.log("chat", "missing receiver=%d sender=%d seq=%d sent_epoch=%.3f" % (
            m["receiver"], m["sender"], m["seq"], m["sent_epoch"]))
    print(" ".join("%s=%s" % (k, v) for k, v in out.items() if not isinstance(v, list)), flush=True)
    return 0 if not missing else 1


# ------------------------------------------------------------------ tcp and http

class Loop(threading.Thread):
    def __init__(self, kind, a, ev, stop):
        super().__init__(daemon=True)
        self.kind, self.a, self.ev, self.stop = kind, a, ev, stop
        self.ok = self.fail = self.corrupt = 0
        self.bytes = 0
        self.failures = []       # epochs
        self.conn = None
        self.rng = random.Random(hash(kind) & 0xffff)

    def run(self):
        nxt = time.monotonic()
        while not self.stop.is_set():
            try:
                n = getattr(self, "op_" + self.kind)()
                self.ok += 1
                self.bytes += n
            except Corrupt as e:
                self.corrupt += 1
                self.failures.append(time.time())
                self.ev.log(self.kind, "CORRUPT: %s" % e)
                self.drop()
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.fail += 1
                self.failures.append(time.time())
                self.ev.log(self.kind, "%s: %s" % (type(e).__name__, e))
                self.drop()
            nxt += self.a.interval
            self.stop.wait(max(0.0, nxt - time.monotonic()))
            if time.monotonic() - nxt > 5:
                nxt = time.monotonic()

    def drop(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None

    def op_http_new(self):
        c = http.client.HTTPConnection("127.0.0.1", self.a.http_port, timeout=10)
        try:
            c.request("GET", "/blob", headers={"Connection": "close"})
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        if r.status != 200:
            raise ValueError("status %d" % r.status)
        if hashlib.sha256(body).hexdigest() != BLOB_SHA:
            raise Corrupt("GET /blob: %d bytes, SHA-256 differs" % len(body))
        return len(body)

    def op_http_keepalive(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.a.http_port, timeout=10)
        self.conn.request("GET", "/small")
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise ValueError("status %d" % r.status)
        if body != SMALL:
            raise Corrupt("GET /small: %r" % body[:40])
        return len(body)

    def op_echo(self):
        if self.conn is None:
            self.conn = socket.create_connection(("127.0.0.1", self.a.echo_port), timeout=10)
            self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        n = self.rng.randint(1, 65536)
        data = self.rng.randbytes(n)
        self.conn.sendall(data)
        back = bytearray()
        while len(back) < n:
            b = self.conn.recv(n - len(back))
            if not b:
                raise OSError("echo connection closed after %d of %d bytes" % (len(back), n))
            back += b
        if bytes(back) != data:
            raise Corrupt("echo of %d bytes differs" % n)
        return n


class Corrupt(Exception):
    pass


def tcp_clients(a):
    ev = Events(a.events)
    stop = threading.Event()
    loops = [Loop(k, a, ev, stop) for k in ("http_new", "http_keepalive", "echo")]
    for lp in loops:
        lp.start()
    try:
        stop.wait(a.duration)
    except KeyboardInterrupt:
        pass
    stop.set()
    for lp in loops:
        lp.join(timeout=15)
    out = {lp.kind: {"ok": lp.ok, "failed": lp.fail, "corrupt": lp.corrupt, "bytes": lp.bytes,
                     "failure_epochs": [round(t, 3) for t in lp.failures]} for lp in loops}
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    print(" ".join("%s_ok=%d %s_failed=%d %s_corrupt=%d" % (k, v["ok"], k, v["failed"], k, v["corrupt"])
                   for k, v in out.items()), flush=True)
    return 1 if any(v["corrupt"] for v in out.values()) else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("http-server")
    p.add_argument("--port", type=int, required=True)
    p = sub.add_parser("chat")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--fingerprint", required=True)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--out", required=True)
    p.add_argument("--events", required=True)
    p = sub.add_parser("tcp")
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--echo-port", type=int, required=True)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--events", required=True)
    a = ap.parse_args()
    return {"http-server": http_server, "chat": chat_clients,
            "tcp": tcp_clients}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
