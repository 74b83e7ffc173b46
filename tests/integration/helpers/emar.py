"""Stand-in EMAR API: the HTTP endpoint netwall's delivery worker posts messages to.

    emar.py --port P [--host 127.0.0.1] [--log FILE] [--mode MODE]

Accepts POST on any path. A body that is a JSON object is accepted (HTTP 200, {"ok": true}):
one JSON line is appended to --log (id, control_id, type, the Idempotency-Key and
X-Netwall-Message-Id headers, the path and a receive timestamp) and one line is printed on
stdout, flushed: "delivered id=<id> control_id=<..> type=<..>". No patient data is printed
or logged. A body that is not JSON is answered 400.

Runtime control (never logged as a delivery):
    POST /_control  {"mode": "ok"|"500"|"503"|"400"|"422"|"429"|"hang"|"close",
                     "count": N,      optional: the next N deliveries get this mode,
                                      then the mode goes back to "ok"
                     "delay": secs}   optional: added before every answer (0 to clear)
    GET  /_stats    {"received": n, "accepted": n, "by_status": {"200": n, ...},
                     "mode": "...", "remaining": n|null, "delay": s}
    POST /_reset    clears the counters and goes back to mode "ok", no delay

Modes: "ok" accepts; "500", "503", "400", "422", "429" answer that status with a short JSON error
body; "hang" reads the request and never answers (until the client gives up or the server
stops); "close" reads the request and closes the connection without answering.

Prints "ready port=<P>" on stdout once listening. Stdlib only; threaded; a bad request
costs that request, never the server.
"""
import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 << 20  # bytes; larger requests are answered 413
MODES = ("ok", "500", "503", "400", "422", "429", "hang", "close")
HANG_MAX = 600.0  # seconds a "hang" answer waits at most


class State:
    def __init__(self, mode, log_path):
        self.lock = threading.Lock()
        self.mode = mode
        self.remaining = None  # deliveries left in the current mode; None: forever
        self.delay = 0.0
        self.received = 0
        self.accepted = 0
        self.by_status = {}
        self.log_path = log_path
        self.stopping = threading.Event()

    def next_mode(self):
        """The mode for one delivery request, consuming one from count."""
        with self.lock:
            self.received += 1
            mode = self.mode
            if self.remaining is not None:
                self.remaining -= 1
                if self.remaining <= 0:
                    self.mode = "ok"
                    self.remaining = None
            return mode, self.delay

    def count_status(self, status):
        with self.lock:
            key = str(status)
            self.by_status[key] = self.by_status.get(key, 0) + 1

    def record(self, entry):
        with self.lock:
            self.accepted += 1
            self.by_status["200"] = self.by_status.get("200", 0) + 1
            if self.log_path:
                with open(self.log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")
            print("delivered id=%s control_id=%s type=%s" % (
                entry.get("id"), entry.get("control_id"), entry.get("type")), flush=True)

    def stats(self):
        with self.lock:
            return {"received": self.received, "accepted": self.accepted,
                    "by_status": dict(self.by_status), "mode": self.mode,
                    "remaining": self.remaining, "delay": self.delay}


def printable(v):
    """A short, single-line rendering of a header value for stdout."""
    s = "" if v is None else str(v)
    return "".join(c if c.isprintable() and c != " " else "?" for c in s)[:80]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # headers and body leave in separate writes: without this, Nagle against the
        # client's delayed ACK holds every keep-alive answer for about 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server_version = "emar-standin/1"
    state = None  # set by main

    def log_message(self, fmt, *args):  # keep stderr quiet
        pass

    def send_json(self, status, obj, close=False):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        """The request body, or None after answering an error."""
        te = self.headers.get("Transfer-Encoding", "")
        if te.lower() == "chunked":
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    self.send_json(413, {"error": "too large"}, close=True)
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.send_json(400, {"error": "bad content-length"}, close=True)
            return None
        if n < 0 or n > MAX_BODY:
            self.send_json(413, {"error": "too large"}, close=True)
            return None
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        try:
            if self.path.split("?")[0] == "/_stats":
                self.send_json(200, self.state.stats())
            else:
                self.send_json(404, {"error": "not found"})
        except (ConnectionError, OSError):
            self.close_connection = True

    def do_POST(self):
        try:
            self.handle_post()
        except (ConnectionError, OSError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - a bad request costs only itself
            try:
                self.send_json(500, {"error": type(e).__name__}, close=True)
            except OSError:
                pass

    def handle_post(self):
        st = self.state
        body = self.read_body()
        if body is None:
            return
        path = self.path.split("?")[0]
        if path == "/_control":
            self.control(body)
            return
        if path == "/_reset":
            with st.lock:
                st.mode, st.remaining, st.delay = "ok", None, 0.0
                st.received = st.accepted = 0
                st.by_status = {}
            self.send_json(200, {"ok": True})
            return
        mode, delay = st.next_mode()
        if delay > 0:
            st.stopping.wait(delay)
        if mode == "hang":
            st.stopping.wait(HANG_MAX)
            self.close_connection = True
            return
        if mode == "close":
            st.count_status("close")
            self.close_connection = True
            return
        if mode != "ok":
            status = int(mode)
            st.count_status(status)
            self.send_json(status, {"error": "mode %s" % mode})
            return
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            st.count_status(400)
            self.send_json(400, {"error": "body is not JSON"})
            return
        if not isinstance(doc, dict):
            st.count_status(400)
            self.send_json(400, {"error": "body is not a JSON object"})
            return
        entry = {
            "id": doc.get("id"),
            "control_id": doc.get("control_id"),
            "type": doc.get("type"),
            "idempotency_key": self.headers.get("Idempotency-Key"),
            "message_id_header": self.headers.get("X-Netwall-Message-Id"),
            "authorization": self.headers.get("Authorization") is not None,
            "path": path,
            "size": len(body),
            "ts": time.time(),
        }
        st.record({k: (printable(v) if k in ("control_id", "type") else v)
                   for k, v in entry.items()})
        self.send_json(200, {"ok": True})

    def control(self, body):
        st = self.state
        try:
            req = json.loads(body.decode("utf-8") or "{}")
            if not isinstance(req, dict):
                raise ValueError("not an object")
            mode = req.get("mode")
            count = req.get("count")
            delay = req.get("delay")
            if mode is not None and str(mode) not in MODES:
                raise ValueError("unknown mode")
            if count is not None and (not isinstance(count, int) or count < 1):
                raise ValueError("bad count")
            if delay is not None and (not isinstance(delay, (int, float)) or delay < 0):
                raise ValueError("bad delay")
        except (UnicodeDecodeError, ValueError) as e:
            self.send_json(400, {"error": str(e)})
            return
        with st.lock:
            if mode is not None:
                st.mode = str(mode)
                st.remaining = count
            if delay is not None:
                st.delay = float(delay)
        self.send_json(200, st.stats())


def main():
    ap = argparse.ArgumentParser(description="stand-in EMAR API")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log", default=None)
    ap.add_argument("--mode", default="ok", choices=MODES)
    args = ap.parse_args()

    state = State(args.mode, args.log)
    Handler.state = state
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.request_queue_size = 1024
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    print("ready port=%d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        state.stopping.set()
        srv.server_close()


if __name__ == "__main__":
    sys.exit(main())
