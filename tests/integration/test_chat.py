"""netwall chat serve, driven by raw-socket IRC clients: registration, nick collision,
join/part/quit notices, channel and private messages in order, accounts (PASS and SASL
PLAIN), flood control, over-long lines and garbage, a client that stops reading, TLS."""

import base64
import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from conftest import NETWALL_BIN, Admin, admin_answers, free_port, ini_text, wait_until


_CLIENT_TLS = []


def client_tls():
    """One unverifying client context for every test connection (making one reads the
    system's CA bundle: tens of milliseconds each)."""
    if not _CLIENT_TLS:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _CLIENT_TLS.append(ctx)
    return _CLIENT_TLS[0]


class Irc:
    """One raw IRC connection."""

    def __init__(self, port, tls=False, timeout=10):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        # without it the first line after the TLS handshake waits for the server's delayed
        # ACK of the client's Finished (Nagle): 40 ms a connection
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            s = client_tls().wrap_socket(s)
        self.s = s
        self.buf = b""
        self.lines = []   # every line received, in order

    def send(self, line):
        self.s.sendall(line.encode() + b"\r\n")

    def read_line(self, timeout=10):
        self.s.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        line = line.rstrip(b"\r").decode("utf-8", "replace")
        self.lines.append(line)
        if line.startswith("PING "):
            self.send("PONG " + line[5:])
        return line

    def expect(self, pattern, timeout=10):
        """Reads until a line matches regex pattern; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r}; last: {self.lines[-5:]}")
            line = self.read_line(left)
            if line is None:
                raise AssertionError(f"closed before {pattern!r}; last: {self.lines[-5:]}")
            m = rx.search(line)
            if m:
                return m

    def closed_within(self, seconds):
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                if self.read_line(max(0.01, deadline - time.monotonic())) is None:
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, ssl.SSLError):
            return True
        return False

    def register(self, nick, password=None):
        if password is not None:
            self.send(f"PASS :{password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick.lower()} 0 * :{nick} real")
        return self

    def close(self):
        self.s.close()


class Chat:
    def __init__(self, procs, workdir, keys=None, name="chat", **opts):
        self.dir = workdir
        self.port = free_port()
        self.admin = Admin(free_port())
        self.accounts = workdir / f"{name}.accounts"
        o = {"plain_listen": f"127.0.0.1:{self.port}", "admin": f"127.0.0.1:{self.admin.port}",
             "accounts": self.accounts, "open_registration": "on", "flood_rate": "1000",
             "flood_burst": "1000", "log_level": "info", "drain_timeout": "1"}
        if keys is not None:
            self.tls_port = free_port()
            o.update({"listen": f"127.0.0.1:{self.tls_port}", "cert": keys["gateway"].crt,
                      "key": keys["gateway"].key})
        o.update(opts)
        ops = o.pop("operators", [])
        sections = [("chat", list(o.items()))] + [(f"operator {n}", []) for n in ops]
        self.config = workdir / f"{name}.ini"
        self.config.write_text(ini_text(sections))
        self.procs = procs
        self.name = name
        self.proc = None

    def passwd(self, nick, password):
        r = subprocess.run([NETWALL_BIN, "chat", "passwd", self.accounts, nick],
                           input=password + "\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return self

    def start(self):
        self.proc = self.procs.start(self.name, [NETWALL_BIN, "chat", "serve", "-c",
                                                 self.config], check_exit=True)
        wait_until(lambda: admin_answers(self.admin.port) or
                   (not self.proc.alive() and pytest.fail(self.proc.tail(20))), 15,
                   "chat admin listener")
        return self

    def client(self, nick=None, password=None, tls=False):
        c = Irc(self.tls_port if tls else self.port, tls=tls)
        if nick is not None:
            c.register(nick, password)
            c.expect(r" 001 ")
        return c


@pytest.fixture
def chat(procs, tmp_path):
    return lambda **kw: Chat(procs, tmp_path, **kw)


def test_registration_and_nick_collision(chat):
    ch = chat().start()
    a = ch.client("alice")
    assert any(" 005 " in line and "CASEMAPPING=rfc1459" in line for line in a.lines) or \
        a.expect(r" 005 .*CASEMAPPING=rfc1459")
    b = Irc(ch.port)
    b.register("ALICE")                      # the same name under case mapping
    b.expect(r" 433 \* ALICE ")
    b.send("NICK bob")
    b.expect(r" 001 bob ")
    b.send("NICK 9bad")
    b.expect(r" 432 ")
    c = Irc(ch.port)
    c.send("JOIN #x")
    c.expect(r" 451 ")                        # not registered yet


def test_join_part_quit_and_messages_in_order(chat):
    ch = chat().start()
    a, b, c = ch.client("alice"), ch.client("bob"), ch.client("carol")
    a.send("JOIN #ward3")
    a.expect(r"^:alice!\S+ JOIN #ward3")
    a.expect(r" 366 alice #ward3 ")
    b.send("JOIN #Ward3")
    b.expect(r" 353 bob = #ward3 :.*@alice")
    a.expect(r"^:bob!\S+ JOIN #ward3")
    c.send("JOIN #ward3")
    a.expect(r"^:carol!\S+ JOIN #ward3")
    b.expect(r"^:carol!\S+ JOIN #ward3")
    for i in range(200):
        a.send(f"PRIVMSG #ward3 :dose check {i}")
    for who in (b, c):
        got = [who.expect(r"^:alice!\S+ PRIVMSG #ward3 :dose check (\d+)$").group(1)
               for _ in range(200)]
        assert got == [str(i) for i in range(200)], "once each, in order"
    a.send("PRIVMSG bob :private word")
    b.expect(r"^:alice!\S+ PRIVMSG bob :private word$")
    a.send("PRIVMSG nobody :x")
    a.expect(r" 401 alice nobody ")
    c.send("PART #ward3 :shift over")
    a.expect(r"^:carol!\S+ PART #ward3 :shift over")
    b.send("QUIT :bye now")
    a.expect(r"^:bob!\S+ QUIT :Quit: bye now")
    assert not any("PRIVMSG #ward3" in line for line in a.lines), "no echo to the sender"
    a.send("TOPIC #ward3 :morning round")
    a.expect(r"^:alice!\S+ TOPIC #ward3 :morning round")
    d = ch.client("dave")
    d.send("JOIN #ward3")
    d.expect(r" 332 dave #ward3 :morning round")
    d.expect(r"PRIVMSG #ward3 :dose check 199")       # the backlog, replayed on join
    d.send("WHOIS alice")
    d.expect(r" 311 dave alice ")
    d.expect(r" 318 dave alice ")


def test_accounts_pass_and_sasl(chat):
    ch = chat(open_registration="off")
    ch.passwd("nurse1", "correct horse battery")
    ch.start()
    bad = Irc(ch.port).register("nurse1", "wrong password!")
    bad.expect(r" 464 ")
    assert bad.closed_within(5)
    nobody = Irc(ch.port).register("stranger")
    nobody.expect(r" 464 ")
    good = ch.client("nurse1", "correct horse battery")
    good.send("WHOIS nurse1")
    good.expect(r" 330 nurse1 nurse1 nurse1 ")
    s = Irc(ch.port)
    s.send("CAP LS 302")
    s.expect(r"CAP \* LS :sasl")
    s.send("CAP REQ :sasl")
    s.expect(r"CAP \* ACK :?sasl")
    s.send("NICK other")
    s.send("USER other 0 * :x")
    s.send("AUTHENTICATE PLAIN")
    s.expect(r"^AUTHENTICATE \+")
    s.send("AUTHENTICATE " + base64.b64encode(b"\0nurse1\0correct horse battery").decode())
    s.expect(r" 903 ")
    s.send("NICK nurse2")
    s.send("CAP END")
    s.expect(r" 001 nurse2 ")
    assert ch.admin.metric("netwall_chat_logins_failed_total") >= 1


def test_flood_is_cut_off_and_others_go_on(chat):
    ch = chat(flood_rate="5", flood_burst="10").start()
    a, b = ch.client("alice"), ch.client("bob")
    for who in (a, b):
        who.send("JOIN #x")
        who.expect(r" 366 ")
    flood = ch.client("mallory")
    for i in range(60):
        try:
            flood.send(f"PRIVMSG #x :spam {i}")
        except OSError:
            break
    flood.expect(r"ERROR :Closing Link: .*Excess Flood")
    a.send("PRIVMSG #x :still here")
    b.expect(r"PRIVMSG #x :still here")
    assert ch.admin.metric("netwall_chat_dropped_total", reason="flood") == 1


def test_long_line_and_garbage(chat):
    ch = chat().start()
    a, b = ch.client("alice"), ch.client("bob")
    b.send("JOIN #x")
    b.expect(r" 366 ")
    a.send("PRIVMSG bob :" + "x" * 9000)
    a.expect(r" 417 ")
    a.send("PRIVMSG bob :after the long one")
    b.expect(r"PRIVMSG bob :after the long one")
    g = ch.client("garbage")
    g.s.sendall(b"\x00\x01\xff\xfe binary\r\n")
    assert g.closed_within(5)
    b.send("PRIVMSG alice :fine")
    a.expect(r"PRIVMSG alice :fine")


def test_a_client_that_stops_reading_is_dropped(chat):
    ch = chat(sendq="65536", flood_rate="10000", flood_burst="100000").start()
    slow = Irc(ch.port)
    slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.register("slow")
    slow.expect(r" 001 ")
    slow.send("JOIN #x")
    slow.expect(r" 366 ")
    a, b = ch.client("alice"), ch.client("bob")
    for who in (a, b):
        who.send("JOIN #x")
        who.expect(r" 366 ")
    text = "y" * 400
    quit_rx = r"^:slow!\S+ QUIT :Quit: SendQ exceeded"
    # b reads every 50 lines: at most 50 * 415 bytes wait for it, far under its send queue
    # whatever the kernel buffers (reading every 500 let b overflow too when they were
    # small). slow is fed until it is dropped, up to more than every kernel buffer holds.
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        most = 2 * int(f.read().split()[2]) // len(text) + 2000
    i = 0
    while not any(re.search(quit_rx, line) for line in b.lines):
        assert i < most, "slow was never dropped"
        for _ in range(50):
            a.send(f"PRIVMSG #x :{i} {text}")
            i += 1
        b.expect(rf"PRIVMSG #x :{i - 1} ")
    a.send("PRIVMSG #x :the rest continue")
    b.expect(r"PRIVMSG #x :the rest continue")
    assert ch.admin.metric("netwall_chat_dropped_total", reason="sendq") == 1


def test_operators_kick_and_ban(chat):
    ch = chat(operators=["boss"])
    ch.passwd("boss", "a long admin password")
    ch.start()
    boss = ch.client("boss", "a long admin password")
    boss.expect(r" 381 boss ")
    u = ch.client("user1")
    u.send("JOIN #x")
    u.expect(r" 366 ")
    boss.send("JOIN #x")
    boss.expect(r" 366 ")
    boss.send("MODE #x +b user1")
    boss.send("KICK #x user1 :out")
    u.expect(r"^:boss!\S+ KICK #x user1 :out")
    u.send("JOIN #x")
    u.expect(r" 474 user1 #x ")
    u.send("KICK #x boss")
    u.expect(r" 482 ")


def test_tls_listener(chat, keys):
    ch = chat(keys=keys).start()
    a = ch.client("alice", tls=True)
    b = ch.client("bob", tls=True)
    a.send("JOIN #sec")
    a.expect(r" 366 ")
    b.send("JOIN #sec")
    b.expect(r" 366 ")
    a.send("PRIVMSG #sec :over tls")
    b.expect(r"^:alice!\S+ PRIVMSG #sec :over tls$")


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))


def test_idle_tls_clients_hold_no_record_buffers(chat, keys):
    """OpenSSL's read and write buffers (about 34 KiB a connection) go back to the heap
    while a TLS client is idle: 200 idle TLS clients cost less than 24 KiB each (they cost
    44 KiB before SSL_MODE_RELEASE_BUFFERS; a plain one costs about 3)."""
    if os.environ.get("NETWALL_SANITIZED"):
        pytest.skip("the sanitizer's allocator pads every allocation: measured in the release pass")
    ch = chat(keys=keys, max_per_source="1000").start()
    first = ch.client("first", tls=True)   # the first handshake's one-time costs
    first.send("JOIN #idle")
    first.expect(r" 366 ")
    before = pss_kib(ch.proc.pid)
    n = 200
    clients = []
    for i in range(n):
        c = ch.client(f"idle{i}", tls=True)
        c.send("JOIN #idle")
        c.expect(r" 366 ")
        clients.append(c)
    per = (pss_kib(ch.proc.pid) - before) / n
    assert per < 24, f"an idle TLS client holds {per:.1f} KiB"


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[chat]\nplain_listen = 127.0.0.1:1\nsendq = 10\nopen_registration = on\n")
    r = subprocess.run([NETWALL_BIN, "chat", "serve", "-c", bad], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and f"{bad}:3:" in r.stderr and "sendq" in r.stderr


def test_two_thousand_clients_in_one_room(chat, record_property):
    """2,000 clients join one channel; a message reaches every one of them; the server's
    memory per idle client is recorded (PSS, KiB)."""
    import selectors
    from conftest import SANITIZED, pss_kib
    n = 2000
    ch = chat(max_per_source="5000", max_clients="5000", sendq="1048576").start()
    base = pss_kib(ch.proc.pid)
    sel = selectors.DefaultSelector()
    socks, bufs, seen = [], {}, {}

    def pump(until, timeout, what):
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            for key, _ in sel.select(0.2):
                s = key.fileobj
                try:
                    data = s.recv(1 << 20)
                except BlockingIOError:
                    continue
                assert data, f"client {key.data} was disconnected"
                buf = bufs[s] + data
                *lines, bufs[s] = buf.split(b"\r\n")
                for line in lines:
                    for tag in (b" 001 ", b" 366 ", b"PRIVMSG #load :to all"):
                        if tag in line:
                            seen[tag].add(key.data)
                    if line.startswith(b"PING "):
                        s.sendall(b"PONG " + line[5:] + b"\r\n")

    for tag in (b" 001 ", b" 366 ", b"PRIVMSG #load :to all"):
        seen[tag] = set()
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", ch.port), timeout=10)
        s.sendall(f"NICK u{i}\r\nUSER u{i} 0 * :load\r\n".encode())
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        socks.append(s)
        bufs[s] = b""
        if i % 200 == 199:
            pump(lambda: len(seen[b" 001 "]) > i - 50, 60, "registrations")
    pump(lambda: len(seen[b" 001 "]) == n, 120, "all registrations")
    for i, s in enumerate(socks):
        s.sendall(b"JOIN #load\r\n")
        if i % 100 == 99:
            pump(lambda: len(seen[b" 366 "]) > i - 50, 120, "joins")
    pump(lambda: len(seen[b" 366 "]) == n, 300, "all joins")
    idle = pss_kib(ch.proc.pid)
    per_client = (idle - base) / n
    record_property("chat_kib_per_idle_client", round(per_client, 1))
    print(f"chat memory: {base} KiB before, {idle} KiB with {n} clients in one room: "
          f"{per_client:.1f} KiB per client")
    socks[0].sendall(b"PRIVMSG #load :to all\r\n")
    pump(lambda: len(seen[b"PRIVMSG #load :to all"]) == n - 1, 120, "the message to all")
    assert 0 not in seen[b"PRIVMSG #load :to all"], "not echoed to the sender"
    if not SANITIZED:
        assert per_client < 64, f"{per_client:.1f} KiB per idle client"
    for s in socks:
        s.close()


def test_irssi_over_tls_talks_with_another_client(chat, keys, tmp_path):
    """irssi, driven under tmux, connects over TLS (pinning the server's certificate),
    joins a room and exchanges messages with a raw client."""
    import shutil
    if shutil.which("irssi") is None or shutil.which("tmux") is None:
        pytest.fail("irssi and tmux are needed (scripts/deps.sh installs them)")
    ch = chat(keys=keys).start()
    fp = subprocess.run(["openssl", "x509", "-in", keys["gateway"].crt, "-noout",
                         "-fingerprint", "-sha256"], capture_output=True, text=True,
                        check=True).stdout.strip().split("=", 1)[1]
    bob = ch.client("bob")
    bob.send("JOIN #ward")
    bob.expect(r" 366 ")
    home = tmp_path / "irssi"
    home.mkdir()
    sock = str(tmp_path / "tmux.sock")
    tmux = ["tmux", "-S", sock]
    subprocess.run(tmux + ["new-session", "-d", "-s", "irc", "-x", "160", "-y", "40",
                           f"irssi --home={home} -n nurse"], check=True)
    try:
        def screen():
            return subprocess.run(tmux + ["capture-pane", "-t", "irc", "-p"],
                                  capture_output=True, text=True).stdout

        def keys_(text):
            subprocess.run(tmux + ["send-keys", "-t", "irc", text, "Enter"], check=True)

        wait_until(lambda: "Irssi v" in screen(), 10, "irssi to start")
        keys_(f"/connect -tls -tls_pinned_cert {fp} 127.0.0.1 {ch.tls_port}")
        wait_until(lambda: "MOTD File is missing" in screen() or "Welcome" in screen(), 15,
                   "irssi to register")
        keys_("/join #ward")
        bob.expect(r"^:nurse!\S+ JOIN #ward")
        wait_until(lambda: "#ward" in screen() and "bob" in screen(), 10, "irssi in #ward")
        bob.send("PRIVMSG #ward :hello from bob")
        wait_until(lambda: "hello from bob" in screen(), 10, "bob's message on irssi's screen")
        keys_("hello from irssi")
        bob.expect(r"^:nurse!\S+ PRIVMSG #ward :hello from irssi$")
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)


def test_builtin_client_keeps_the_typed_line_while_messages_arrive(chat, keys, tmp_path):
    """netwall chat connect under tmux: over TLS with a pinned certificate it logs in and
    joins; messages that arrive while a line is half typed are shown above the prompt and
    the typed text stays; finishing the line sends it."""
    ch = chat(keys=keys, open_registration="off")
    ch.passwd("alice", "alice's long password").passwd("bob", "bob's long password")
    ch.start()
    pw = tmp_path / "alice.pw"
    pw.write_text("alice's long password\n")
    bob = ch.client("bob", "bob's long password")
    bob.send("JOIN #ward")
    bob.expect(r" 366 ")
    sock = str(tmp_path / "tmux.sock")
    tmux = ["tmux", "-S", sock]
    cmd = (f"{NETWALL_BIN} chat connect --nick alice --password-file {pw} "
           f"--fingerprint {keys['gateway'].fingerprint} 127.0.0.1:{ch.tls_port}")
    subprocess.run(tmux + ["new-session", "-d", "-s", "c", "-x", "120", "-y", "30", cmd],
                   check=True)
    try:
        def screen():
            return subprocess.run(tmux + ["capture-pane", "-t", "c", "-p"],
                                  capture_output=True, text=True).stdout

        def type_(text, enter=True):
            subprocess.run(tmux + ["send-keys", "-t", "c", "-l", text], check=True)
            if enter:
                subprocess.run(tmux + ["send-keys", "-t", "c", "Enter"], check=True)

        wait_until(lambda: "connected as alice" in screen(), 15, "the client to log in")
        type_("/join #ward")
        bob.expect(r"^:alice!\S+ JOIN #ward")
        wait_until(lambda: "[#ward]" in screen(), 10, "the prompt to show the room")
        type_("half a senten", enter=False)
        for i in range(5):
            bob.send(f"PRIVMSG #ward :news {i}")
        wait_until(lambda: "<bob> news 4" in screen(), 10, "bob's messages on screen")
        rows = [r for r in screen().splitlines() if r.strip()]
        assert rows[-1].rstrip() == "[#ward] half a senten", rows[-3:]
        assert all(f"<bob> news {i}" in screen() for i in range(5))
        type_("ce")
        bob.expect(r"^:alice!\S+ PRIVMSG #ward :half a sentence$")
        type_("/quit")
        wait_until(lambda: "bye" in screen() or "can't find" in screen().lower() or
                   subprocess.run(tmux + ["has-session", "-t", "c"],
                                  capture_output=True).returncode != 0, 10, "the client to end")
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)


def test_builtin_client_reconnects_and_rejoins(chat, tmp_path):
    ch = chat().start()
    sock = str(tmp_path / "tmux.sock")
    tmux = ["tmux", "-S", sock]
    cmd = f"{NETWALL_BIN} chat connect --plain --nick carol 127.0.0.1:{ch.port}"
    subprocess.run(tmux + ["new-session", "-d", "-s", "c", "-x", "120", "-y", "30", cmd],
                   check=True)
    try:
        def screen():
            return subprocess.run(tmux + ["capture-pane", "-t", "c", "-p"],
                                  capture_output=True, text=True).stdout

        wait_until(lambda: "connected as carol" in screen(), 15, "the client to log in")
        subprocess.run(tmux + ["send-keys", "-t", "c", "-l", "/join #night"], check=True)
        subprocess.run(tmux + ["send-keys", "-t", "c", "Enter"], check=True)
        wait_until(lambda: "carol joined #night" in screen(), 10, "the join")
        ch.proc.kill()
        wait_until(lambda: "connection lost" in screen(), 10, "the client to notice")
        ch.start()
        dan = ch.client("dan")
        dan.send("JOIN #night")
        dan.expect(r" 366 ")
        if not any(re.search(r"^:carol!\S+ JOIN #night", line) for line in dan.lines):
            dan.expect(r"^:carol!\S+ JOIN #night|353 dan = #night :.*carol", timeout=20)
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)


def test_chat_published_through_the_wall(chat, wall, keys):
    """The chat's TLS port behind the wall: a client reaches it through the gateway, TLS end
    to end, while the server listens on loopback only."""
    from conftest import svc
    ch = chat(keys=keys).start()
    gw = wall.gateway({"irc": svc()})
    wall.agent("site-a", gw, {"irc": f"127.0.0.1:{ch.tls_port}"})
    gw.wait_tunnels(2)
    outside = Irc(gw.port("irc"), tls=True)
    outside.register("visitor")
    outside.expect(r" 001 visitor ")
    outside.send("JOIN #lobby")
    outside.expect(r" 366 ")
    inside = ch.client("staff")
    inside.send("JOIN #lobby")
    outside.expect(r"^:staff!\S+ JOIN #lobby")
    inside.send("PRIVMSG #lobby :welcome through the wall")
    outside.expect(r"PRIVMSG #lobby :welcome through the wall$")


def test_sighup_reads_the_accounts_again(chat):
    import signal as _signal
    ch = chat(open_registration="off")
    ch.passwd("first", "first's long password")
    ch.start()
    ch.client("first", "first's long password")
    late = Irc(ch.port).register("second", "second's long password")
    late.expect(r" 464 ")
    ch.passwd("second", "second's long password")
    mark = ch.proc.mark()
    ch.proc.signal(_signal.SIGHUP)
    ch.proc.wait_event("reloaded", since=mark)
    ch.client("second", "second's long password")
    ch.proc.signal(_signal.SIGTERM)
    assert ch.proc.wait_exit(10) == 0


def test_sighup_with_a_broken_config_still_reads_the_accounts(chat):
    """`netwall chat passwd` adds an account while chat.ini holds a mistake: the SIGHUP
    that follows reports the mistake, keeps the running config, and still reads the
    accounts file, as it did before the daemons shared one reload path."""
    import signal as _signal
    ch = chat(open_registration="off")
    ch.passwd("first", "first's long password")
    ch.start()
    ch.passwd("carol", "carol's long password")
    ch.config.write_text(ch.config.read_text() + "no_such_key = 1\n")
    mark = ch.proc.mark()
    ch.proc.signal(_signal.SIGHUP)
    ch.proc.wait_event("reload_failed", since=mark)
    ch.proc.wait_event("reloaded", since=mark)
    ch.client("carol", "carol's long password")
    ch.proc.signal(_signal.SIGTERM)
    assert ch.proc.wait_exit(10) == 0


def test_weechat_over_tls_talks_with_another_client(chat, keys, procs, tmp_path):
    """weechat (headless) connects over TLS with a pinned certificate, sends a private
    message once connected, joins a room and receives what is said there."""
    import glob
    import shutil
    if shutil.which("weechat-headless") is None:
        pytest.fail("weechat-headless is needed (scripts/deps.sh installs it)")
    ch = chat(keys=keys).start()
    bob = ch.client("bob")
    bob.send("JOIN #ward")
    bob.expect(r" 366 ")
    home = tmp_path / "weechat"
    home.mkdir()
    fp = keys["gateway"].fingerprint
    procs.start("weechat", ["weechat-headless", "--dir", home, "--run",
                            "/set logger.file.flush_delay 0; "
                            f"/server add local 127.0.0.1/{ch.tls_port} -ssl "
                            f"-ssl_fingerprint={fp} -nicks=wee -autojoin=#ward; "
                            '/set irc.server.local.command "/msg bob hello from weechat"; '
                            "/connect local"])
    bob.expect(r"^:wee!\S+ PRIVMSG bob :hello from weechat$", timeout=20)
    if not any(re.search(r"^:wee!\S+ JOIN #ward", line) for line in bob.lines):
        bob.expect(r"^:wee!\S+ JOIN #ward", timeout=20)
    bob.send("PRIVMSG #ward :hello weechat")

    def logged():
        for f in glob.glob(str(home / "logs" / "*ward*")):
            if "hello weechat" in open(f, errors="replace").read():
                return True
        return False
    wait_until(logged, 15, "weechat to log bob's message")


def test_open_registration_lets_a_client_create_its_account(chat):
    """REGISTER (IRCv3 account-registration) with open_registration: the nickname then
    needs its password; without open_registration it is refused."""
    ch = chat()
    ch.accounts.write_text("")
    ch.start()
    a = ch.client("newnurse")
    a.send("REGISTER * * :short")
    a.expect(r"FAIL REGISTER WEAK_PASSWORD")
    a.send("REGISTER * * :a long enough password")
    a.expect(r"REGISTER SUCCESS newnurse")
    a.send("REGISTER * * :another long password")
    a.expect(r"FAIL REGISTER ALREADY_AUTHENTICATED")
    assert "newnurse:scrypt$" in ch.accounts.read_text()
    a.send("QUIT")
    bad = Irc(ch.port).register("newnurse")
    bad.expect(r" 464 ")
    ch.client("newnurse", "a long enough password")
    closed = chat(name="closed", open_registration="off")
    closed.passwd("someone", "someone's password")
    closed.start()
    c = closed.client("someone", "someone's password")
    c.send("REGISTER * * :whatever password")
    c.expect(r"FAIL REGISTER DISALLOWED")
