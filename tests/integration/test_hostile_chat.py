"""netwall chat serve against hostile clients: a client whose own send queue overflows in
the middle of one of its commands (the server must not free what the command still holds:
the client is marked and reaped when control is back in the loop), password guessing that
must not block the loop nor tell accounts apart, peer text kept out of the logs, and the
process-wide memory budget."""

import os
import re
from pathlib import Path
import socket

import pytest

from conftest import NETWALL_BIN, admin_answers, wait_until
from test_chat import Chat, Irc, chat  # noqa: F401  (chat is a fixture)

SENDQ = 4096


def pong_of(c, token):
    """Reads until the PONG carrying token; returns (bytes before it, bytes of it)."""
    before = 0
    while True:
        line = c.read_line()
        assert line is not None, f"closed before PONG {token}; last: {c.lines[-5:]}"
        if re.search(rf" PONG \S+ :?{re.escape(token)}$", line):
            return before, len(line) + 2
        before += len(line) + 2


def pings_for(total, base):
    """PING lines whose PONGs add up to exactly total bytes (each PONG is base + token)."""
    k = max(1, -(-total // (base + 400)))
    rem = total - k * base
    assert rem >= k, f"cannot make {total} bytes of PONG"
    sizes = [rem // k + (1 if i < rem % k else 0) for i in range(k)]
    return "".join(f"PING :{'p' * n}\r\n" for n in sizes)


class Overflow:
    """A victim alone in #solo and a filler in #b whose backlog nearly fills a send queue:
    victim.batch(cmd) sends, in one write, JOIN #b, PINGs that leave the victim's queue
    `slack` bytes short of the limit, then cmd, whose first line to the victim overflows."""

    def __init__(self, ch, slack=10):
        self.ch = ch
        self.filler = ch.client("filler")
        self.filler.send("JOIN #b")
        self.filler.expect(r" 366 ")
        for i in range(20):
            self.filler.send(f"PRIVMSG #b :fill {i:02d} " + "z" * 80)
        self.filler.send("PING :f")
        pong_of(self.filler, "f")
        self.victim = ch.client("victim")
        self.victim.send("JOIN #solo")
        self.victim.expect(r" 366 victim #solo ")
        self.victim.send("JOIN #b")
        self.victim.send("PING :m1")
        self.join_len, pong = pong_of(self.victim, "m1")
        self.pong_base = pong - 2
        self.victim.send("PART #b")
        self.victim.send("PING :m2")
        pong_of(self.victim, "m2")
        self.slack = slack

    def batch(self, cmd):
        fill = SENDQ - self.slack - self.join_len
        data = "JOIN #b\r\n" + pings_for(fill, self.pong_base) + cmd + "\r\n"
        assert len(data) < 4000, "one read"
        self.victim.s.sendall(data.encode())

    def check_dropped(self):
        """The victim got what fit, an ERROR for the send queue, and the end of the
        connection; the server goes on for the others."""
        v = self.victim
        v.expect(r"^ERROR :Closing Link: \S+ \(SendQ exceeded\)")
        assert v.closed_within(10)
        self.filler.send("PING :after")
        pong_of(self.filler, "after")
        other = self.ch.client("other")
        other.send("JOIN #b")
        self.filler.expect(r"^:other!\S+ JOIN #b")
        other.send("PRIVMSG #b :still served")
        self.filler.expect(r"^:other!\S+ PRIVMSG #b :still served$")
        assert self.ch.admin.metric("netwall_chat_dropped_total", reason="sendq") == 1
        assert self.ch.proc.alive()


@pytest.mark.parametrize("cmd", [
    "PART #solo",
    "PART #solo :with a reason",
    "JOIN 0",
    "KICK #solo victim :self",
    "LIST",
    "NAMES #solo",
    "WHO #solo",
    "PRIVMSG #solo,victim :to the room and to myself",
])
def test_own_sendq_overflows_inside_a_command(chat, cmd):
    ch = chat(sendq=str(SENDQ)).start()
    o = Overflow(ch)
    o.batch(cmd)
    o.check_dropped()


# ---------------------------------------------------------------- password guessing

PASSWORD = "the nurse's long password"


def irc_from(port, src):
    """An Irc connection from source address src (127.0.0.x)."""
    c = Irc.__new__(Irc)
    c.s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(src, 0))
    c.buf, c.lines = b"", []
    return c


def bad_login(ch, nick="nurse1", password="wrong password!", src="127.0.0.1"):
    c = irc_from(ch.port, src)
    c.register(nick, password)
    return c


def sasl(ch, payload, nick="guest"):
    """A client that sent CAP, NICK, USER and AUTHENTICATE PLAIN with payload (bytes)."""
    import base64
    s = Irc(ch.port)
    s.send("CAP REQ :sasl")
    s.send(f"NICK {nick}")
    s.send(f"USER {nick} 0 * :x")
    s.send("AUTHENTICATE PLAIN")
    s.expect(r"^AUTHENTICATE \+")
    s.send("AUTHENTICATE " + base64.b64encode(payload).decode())
    return s


def test_password_checks_do_not_block_the_loop(chat):
    """Logins with wrong passwords from many connections: while their checks (scrypt, and the
    growing delay before each answer) are pending, another client's PINGs are answered."""
    n = 8
    ch = chat(open_registration="off", max_per_source="64")
    ch.passwd("nurse1", PASSWORD).passwd("staff", PASSWORD)
    ch.start()
    staff = ch.client("staff", PASSWORD)
    bad = [bad_login(ch, f"guess{i}", src=f"127.0.0.{1 + i % 2}") for i in range(n)]
    ch.admin.wait_metric("netwall_chat_logins_pending", lambda v: v == n, 20,
                         "every check pending")
    for i in range(3):
        staff.send(f"PING :rtt{i}")
        pong_of(staff, f"rtt{i}")
    assert ch.admin.metric("netwall_chat_logins_pending") >= 1, \
        "the PINGs were answered while checks were pending"
    for b in bad:
        b.expect(r" 464 guess\d :Password incorrect$", timeout=60)
        assert b.closed_within(10)
    assert ch.admin.metric("netwall_chat_logins_failed_total") == n


def test_password_queue_full_makes_logins_wait(chat):
    """64 logins at once against a queue of 32 checks (24 of them for unknown accounts): those
    over it wait for a check, none is refused as busy; every one is answered 464; the server
    goes on."""
    n = 64
    ch = chat(open_registration="off", max_per_source="128", register_timeout="120")
    ch.passwd("staff", PASSWORD)
    ch.start()
    cs = []
    for i in range(n):                          # 4 from each address: its own limit
        c = irc_from(ch.port, f"127.0.0.{1 + i // 4}")
        c.send("PASS :wrong password!")
        c.send(f"NICK guess{i}")
        cs.append(c)
    for i, c in enumerate(cs):                 # USER completes registration: all at once
        c.send(f"USER g{i} 0 * :x")
    for c in cs:
        c.expect(r" 464 guess\d+ :Password incorrect$", timeout=120)
    assert ch.admin.metric("netwall_chat_logins_busy_total") == 0
    assert ch.admin.metric("netwall_chat_logins_failed_total") == n
    staff = ch.client("staff", PASSWORD)
    staff.send("PING :alive")
    pong_of(staff, "alive")


def test_one_address_cannot_fill_the_password_queue(chat):
    """40 logins at once from one address: at most 4 of its checks are queued, the others
    wait; a login from another address right after them is checked at once."""
    ch = chat(open_registration="off", max_per_source="64", register_timeout="120")
    ch.passwd("staff", PASSWORD)
    ch.start()
    cs = []
    for i in range(40):
        c = Irc(ch.port)
        c.send("PASS :wrong password!")
        c.send(f"NICK guess{i}")
        cs.append(c)
    for i, c in enumerate(cs):
        c.send(f"USER g{i} 0 * :x")
    good = irc_from(ch.port, "127.0.0.2")
    good.register("staff", PASSWORD)
    good.expect(r" 001 staff ", timeout=60)
    for c in cs:
        c.expect(r" 464 guess\d+ :Password incorrect$", timeout=120)
    assert ch.admin.metric("netwall_chat_logins_busy_total") == 0


class Gate:
    """Holds the password worker: the accounts file is swapped for a FIFO and a REGISTER
    makes the worker open it, which blocks until open() lets it read (an empty file) and
    puts the real file back. Meanwhile every other check stays queued, deterministically."""

    def __init__(self, ch):
        d = ch.dir
        self.path, self.saved, self.fifo = ch.accounts, d / "accounts.saved", d / "gate"
        os.link(self.path, self.saved)
        os.mkfifo(self.fifo)
        os.link(self.fifo, d / "gate.link")
        os.replace(d / "gate.link", self.path)
        self.c = Irc(ch.port)
        self.c.send("NICK gatekeeper")
        self.c.send("REGISTER * * :gatekeeper's password")
        # held: a thread of the chat is blocked opening the FIFO (the kernel's wait for the
        # other end), not merely queued or still hashing the password
        wait_until(lambda: self.worker_blocked(ch.proc.pid), 30,
                   "the REGISTER to hold the password worker on the FIFO")
        self.held = True

    @staticmethod
    def worker_blocked(pid):
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                if (task / "wchan").read_text().strip() == "wait_for_partner":
                    return True
            except OSError:
                pass
        return False

    def open(self):
        """Lets the worker go (it is blocked opening the FIFO: see __init__)."""
        if not self.held:
            return
        self.held = False
        os.replace(self.saved, self.path)

        try:
            os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as e:  # ENXIO: nobody has it open for reading
            raise AssertionError(f"the worker was not held on the FIFO: {e}") from None


def sasl_from(ch, src, account, password, nick):
    import base64
    s = irc_from(ch.port, src)
    s.send("CAP REQ :sasl")
    s.send(f"NICK {nick}")
    s.send(f"USER {nick} 0 * :x")
    s.send("AUTHENTICATE PLAIN")
    s.send("AUTHENTICATE " + base64.b64encode(f"\0{account}\0{password}".encode()).decode())
    return s


def queued(ch):
    """Logins held (checked or waiting) plus logins turned away as busy."""
    return (ch.admin.metric("netwall_chat_logins_pending") +
            ch.admin.metric("netwall_chat_logins_busy_total"))


def test_known_account_logs_in_while_decoys_fill_the_checks(chat):
    """32 SASL logins to unknown accounts from 8 addresses (4 each, their own limit) while
    the worker is held: they may fill the queue only up to its reserve for known accounts,
    so a login with the right password from another address is queued, is checked ahead of
    the decoys queued before it, and succeeds."""
    ch = chat(register_timeout="120")
    ch.passwd("nurse1", PASSWORD)
    ch.start()
    gate = Gate(ch)
    try:
        decoys = [sasl_from(ch, f"127.0.0.{10 + i // 4}", f"nobody{i}", "wrong password!",
                            f"g{i}") for i in range(32)]
        wait_until(lambda: queued(ch) == 33, 30, "every decoy queued, waiting or refused")
        good = irc_from(ch.port, "127.0.0.30")
        good.register("nurse1", PASSWORD)
        ch.admin.wait_metric("netwall_chat_logins_pending", lambda v: v == 34, 20,
                             "the login held (the queue was full before the fix: 464)")
        gate.open()
        assert good.expect(r" (001|464) ", timeout=120).group(1) == "001"
    finally:
        gate.open()
    assert ch.admin.metric("netwall_chat_logins_busy_total") == 0
    log = ch.proc.text()
    first_fail = log.find("event=login_failed")
    assert 0 <= log.find("event=registered peer=127.0.0.30 nick=nurse1") < first_fail or \
        first_fail == -1, "the known account's check ran ahead of the decoys queued before it"
    for d in decoys:
        d.close()


def test_login_waits_for_a_check_instead_of_being_refused(chat):
    """40 wrong-password SASL logins to the same account from 8 addresses fill the queue while the
    worker is held; a login with the right password from a ninth address waits for a check
    (it is not refused with 464) and gets the first one that frees: its address has none."""
    ch = chat(register_timeout="120")
    ch.passwd("nurse1", PASSWORD)
    ch.start()
    gate = Gate(ch)
    try:
        bad = [sasl_from(ch, f"127.0.0.{10 + i % 8}", "nurse1", "wrong password!", f"g{i}")
               for i in range(40)]
        wait_until(lambda: queued(ch) >= 41, 30, "every bad login queued, waiting or refused")
        good = irc_from(ch.port, "127.0.0.30")
        good.register("nurse1", PASSWORD)
        ch.admin.wait_metric("netwall_chat_logins_pending", lambda v: v == 42, 20,
                             "the login held (refused with 464 before the fix)")
        gate.open()
        assert good.expect(r" (001|464) ", timeout=120).group(1) == "001"
    finally:
        gate.open()
    for b in bad:
        b.expect(r" 904 g\d+ :SASL authentication failed$", timeout=120)
    assert ch.admin.metric("netwall_chat_logins_busy_total") == 0


def test_login_not_checked_before_its_deadline_is_told_busy(chat):
    """With the worker held past register_timeout, a login still queued or waiting for a check
    is told the server is busy (a temporary failure), never 464 or 904."""
    ch = chat(register_timeout="2", open_registration="on")
    ch.passwd("nurse1", PASSWORD)
    ch.start()
    gate = Gate(ch)
    try:
        cs = [sasl_from(ch, f"127.0.0.{10 + i // 4}", f"nobody{i}", "wrong password!",
                        f"g{i}") for i in range(24)]
        good = irc_from(ch.port, "127.0.0.30")
        good.register("nurse1", PASSWORD)
        for c in cs + [good]:
            m = c.expect(r"^ERROR :Closing Link: \S+ \((.*)\)$| (464|904) ", timeout=60)
            assert m.group(1) == "Server busy, try again", c.lines[-3:]
            assert c.closed_within(10)
        assert ch.admin.metric("netwall_chat_logins_busy_total") >= 25
    finally:
        gate.open()


def test_password_checks_count_per_source_network(chat):
    """With source_prefix_v4 = 24, 127.0.0.1 (holding the worker) and 127.0.0.10-14 are one
    source network: 4 of its checks are queued, its other logins wait; a login from
    127.0.1.1, another network, is queued at once and checked before the waiting ones."""
    ch = chat(register_timeout="120", source_prefix_v4="24")
    ch.passwd("nurse1", PASSWORD)
    ch.start()
    gate = Gate(ch)
    try:
        same = [sasl_from(ch, f"127.0.0.{10 + i}", f"nobody{i}", "wrong password!", f"g{i}")
                for i in range(5)]
        ch.admin.wait_metric("netwall_chat_logins_pending", lambda v: v == 6, 20,
                             "five logins held")
        other = sasl_from(ch, "127.0.1.1", "nobody9", "wrong password!", "g9")
        ch.admin.wait_metric("netwall_chat_logins_pending", lambda v: v == 7, 20,
                             "the other network's login held")
        gate.open()
        for c in same + [other]:
            c.expect(r" 904 g\d :SASL authentication failed$", timeout=120)
    finally:
        gate.open()
    order = re.findall(r"event=login_failed peer=(\S+)", ch.proc.text())
    # three of 127.0.0.10-14 were queued (which three is the server's reading order), two
    # waited; 127.0.1.1 was queued before those two (counted per /32, it came last)
    assert len(order) == 6 and order.index("127.0.1.1") == 3, order


def test_register_over_the_unknown_share_is_told_to_retry(chat):
    """REGISTER and decoys share 24 of the 32 checks: with the worker held by one REGISTER
    and 23 decoy logins queued, another REGISTER is answered TEMPORARILY_UNAVAILABLE at once
    (the client may retry), while a 24th decoy waits instead."""
    ch = chat(register_timeout="120")
    ch.passwd("nurse1", PASSWORD)
    ch.start()
    gate = Gate(ch)
    try:
        decoys = [sasl_from(ch, f"127.0.0.{10 + i // 4}", f"nobody{i}", "wrong password!",
                            f"g{i}") for i in range(24)]
        ch.admin.wait_metric("netwall_chat_logins_pending", lambda v: v == 25, 20,
                             "the decoys held: 23 queued, one waiting")
        r = irc_from(ch.port, "127.0.0.30")
        r.send("NICK newcomer")
        r.send("REGISTER * * :newcomer's password")
        r.expect(r"^:\S+ FAIL REGISTER TEMPORARILY_UNAVAILABLE \* :Busy, try again$")
        assert ch.admin.metric("netwall_chat_logins_busy_total") == 1
        gate.open()
        for d in decoys:
            d.expect(r" 904 g\d+ :SASL authentication failed$", timeout=120)
    finally:
        gate.open()


def test_login_failures_look_the_same(chat):
    """Unknown account, wrong password, no password: one 464 text; SASL: one 904 text."""
    ch = chat(open_registration="off")
    ch.passwd("nurse1", PASSWORD).passwd("nurse2", PASSWORD)
    ch.start()
    cs = [bad_login(ch, nick, pw) for nick, pw in (
        ("nurse1", "wrong password!"), ("nobody", "wrong password!"), ("nurse2", None),
        ("nobody2", None))]
    texts = {c.expect(r" 464 \S+ (.*)$", timeout=30).group(1) for c in cs}
    assert texts == {":Password incorrect"}, texts
    assert all(c.closed_within(20) for c in cs)
    ss = [sasl(ch, payload, f"guest{i}") for i, payload in enumerate((
        b"\0nurse1\0wrong password!", b"\0nobody\0wrong password!", b"no nul at all",
        b"\0nurse1\0short"))]
    texts = {s.expect(r" (90[0-9]) \S+ (.*)$", timeout=30).groups() for s in ss}
    assert texts == {("904", ":SASL authentication failed")}, texts


def test_sasl_connection_closed_after_three_failures(chat):
    import base64
    ch = chat(open_registration="off")
    ch.passwd("nurse1", PASSWORD)
    ch.start()
    s = sasl(ch, b"\0nurse1\0wrong password 1")
    s.expect(r" 904 ")
    for i in (2, 3):
        s.send("AUTHENTICATE PLAIN")
        s.expect(r"^AUTHENTICATE \+")
        s.send("AUTHENTICATE " + base64.b64encode(
            f"\0nurse1\0wrong password {i}".encode()).decode())
        s.expect(r" 904 ", timeout=30)
    s.expect(r"^ERROR :Closing Link: \S+ \(Too many failed logins\)", timeout=30)
    assert s.closed_within(10)
    delays = [float(e["delay"]) for e in ch.proc.events("login_failed")]
    assert len(delays) == 3 and delays[0] < delays[1] < delays[2], delays
    good = sasl(ch, f"\0nurse1\0{PASSWORD}".encode(), nick="nurse1")
    good.expect(r" 903 ", timeout=30)


# ---------------------------------------------------------------- the terminal client

class TlsServer:
    """A TLS server on loopback (127.0.0.1, and ::1 where there is one) that records the
    SNI of each handshake and every line a client sends; it answers nothing."""

    def __init__(self, crt, key):
        import ssl
        import threading
        from conftest import free_port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(crt, key)
        self.ctx.sni_callback = lambda s, name, c: self.sni.append(name)
        self.sni, self.lines = [], []
        self.port = free_port()
        self.socks = []
        for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, self.port))
                s.listen(8)
                self.socks.append(s)
            except OSError:
                continue
        for s in self.socks:
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, lsock):
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as t:
                    buf = b""
                    while True:
                        data = t.recv(4096)
                        if not data:
                            break
                        buf += data
                        *got, buf = buf.split(b"\r\n")
                        self.lines.extend(x.decode("utf-8", "replace") for x in got)
                        if any(x.startswith(b"QUIT") for x in got):
                            break
            except (OSError, ValueError):
                conn.close()

    def close(self):
        for s in self.socks:
            s.close()


def make_cert(d, ca, name, san):
    """A certificate for subjectAltName san ("DNS:x" or "IP:a.b.c.d") signed by ca."""
    import subprocess

    def openssl(*args):
        subprocess.run(["openssl", *map(str, args)], cwd=d, check=True, capture_output=True)
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr")
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", ca[0], "-CAkey", ca[1],
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
    return d / f"{name}.crt", d / f"{name}.key"


@pytest.fixture
def tls_names(tmp_path):
    from test_ca import make_ca
    ca = make_ca(tmp_path)
    certs = {n: make_cert(tmp_path, ca, n, san) for n, san in (
        ("evil", "DNS:evil.example"), ("chat", "DNS:chat.example"),
        ("local", "DNS:localhost"), ("ip", "IP:127.0.0.1"))}
    pw = tmp_path / "pw"
    pw.write_text("alice's long password\n")
    servers = []

    def run(cert, host, server_name=None, quit_after_pass=True):
        import subprocess
        from conftest import NETWALL_BIN, wait_until
        srv = TlsServer(*certs[cert])
        servers.append(srv)
        argv = [NETWALL_BIN, "chat", "connect", "--ca", ca[0], "--nick", "alice",
                "--password-file", pw]
        if server_name:
            argv += ["--server-name", server_name]
        p = subprocess.Popen(argv + [f"{host}:{srv.port}"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: p.poll() is not None or any(
                x.startswith("USER ") for x in srv.lines), 20, "the client to log in or end")
            out, err = p.communicate(input="", timeout=20)  # end of input: QUIT, the end
        finally:
            if p.poll() is None:
                p.kill()
        return p.returncode, err, srv
    yield run
    for s in servers:
        s.close()


def test_client_refuses_a_certificate_for_another_name(tls_names):
    """A certificate from the trusted CA but for evil.example: the client never sends the
    password, and ends with one line naming the mismatch."""
    rc, err, srv = tls_names("evil", "127.0.0.1", server_name="chat.example")
    assert rc == 1 and not any(x.startswith("PASS") for x in srv.lines), srv.lines
    assert len(err.strip().splitlines()) == 1 and "chat.example" in err and \
        "name mismatch" in err, err
    assert srv.sni == ["chat.example"]
    rc, err, srv = tls_names("evil", "127.0.0.1")
    assert rc == 1 and not any(x.startswith("PASS") for x in srv.lines), srv.lines
    assert "127.0.0.1" in err and "name mismatch" in err, err


def test_client_checks_the_name_and_sends_sni(tls_names):
    rc, err, srv = tls_names("chat", "127.0.0.1", server_name="chat.example")
    assert rc == 0 and "PASS :alice's long password" in srv.lines, (err, srv.lines)
    assert srv.sni == ["chat.example"]
    rc, err, srv = tls_names("local", "localhost")     # SNI by default: the host given
    assert rc == 0 and "PASS :alice's long password" in srv.lines, (err, srv.lines)
    assert srv.sni == ["localhost"]
    rc, err, srv = tls_names("ip", "127.0.0.1")        # an address: checked, no SNI
    assert rc == 0 and "PASS :alice's long password" in srv.lines, (err, srv.lines)
    assert srv.sni == [None]


# ---------------------------------------------------------------- logs

FORGED = 'pt DOE^JOHN MRN 000123" level=error event=forged x="'


def test_peer_text_never_reaches_the_log(chat):
    """QUIT, PART and KICK reasons, topics, messages and realnames are never logged; a
    nickname with bytes that mean something in a log line is escaped."""
    ch = chat(operators=[]).start()
    odd = "od\\d{x}"
    a = ch.client(odd)
    b = Irc(ch.port)
    b.send("NICK bob")
    b.send(f"USER bob 0 * :{FORGED}")
    b.expect(r" 001 ")
    for who in (a, b):
        who.send("JOIN #w")
        who.expect(r" 366 ")
    a.send(f"TOPIC #w :{FORGED}")
    b.expect(r" TOPIC #w ")
    a.send(f"PRIVMSG #w :{FORGED}")
    b.expect(r" PRIVMSG #w ")
    b.send(f"PART #w :{FORGED}")
    a.expect(r" PART #w ")
    b.send("JOIN #w")
    a.expect(r" JOIN #w")
    a.send(f"KICK #w bob :{FORGED}")
    b.expect(r" KICK #w bob ")
    a.send(f"QUIT :{FORGED}")
    assert a.closed_within(10)
    mark = ch.proc.mark()
    b.send("QUIT")
    assert b.closed_within(10)
    ch.proc.wait_event("closed", since=mark, nick="bob")
    text = ch.proc.text()
    assert "000123" not in text and "event=forged" not in text, text
    assert "nick=od%5Cd{x}" in text and odd not in text, text


# ---------------------------------------------------------------- the accounts file

def test_accounts_file_is_0600_whatever_the_umask(chat, tmp_path):
    """netwall chat passwd and REGISTER create and rewrite the accounts file with mode
    0600 under umask 022."""
    import os
    import stat
    import subprocess
    from conftest import NETWALL_BIN
    old = os.umask(0o022)
    try:
        ch = chat()
        r = subprocess.run([NETWALL_BIN, "chat", "passwd", ch.accounts, "first"],
                           input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert stat.S_IMODE(ch.accounts.stat().st_mode) == 0o600
        os.chmod(ch.accounts, 0o644)
        ch.start()
        a = ch.client("second")
        a.send(f"REGISTER * * :{PASSWORD}")
        a.expect(r"REGISTER SUCCESS second", timeout=30)
        assert stat.S_IMODE(ch.accounts.stat().st_mode) == 0o600
        ch.accounts.unlink()
        b = ch.client("third")
        b.send(f"REGISTER * * :{PASSWORD}")
        b.expect(r"REGISTER SUCCESS third", timeout=30)
        assert stat.S_IMODE(ch.accounts.stat().st_mode) == 0o600
        assert not list(tmp_path.glob("*.tmp"))
    finally:
        os.umask(old)


# ---------------------------------------------------------------- the memory budget

BUDGET = 262144


def drain(clients, marker, timeout=120):
    """Reads every client's socket at once until each has received marker."""
    import selectors
    import time
    sel = selectors.DefaultSelector()
    tails = {}
    for c in clients:
        c.s.setblocking(False)
        sel.register(c.s, selectors.EVENT_READ, c)
        tails[c] = c.buf
    deadline = time.monotonic() + timeout
    while sel.get_map():
        assert time.monotonic() < deadline, f"{marker!r} not received by all"
        for key, _ in sel.select(0.5):
            try:
                data = key.fileobj.recv(1 << 20)
            except BlockingIOError:
                continue
            assert data, "a reader was disconnected"
            tail = tails[key.data] + data
            if marker in tail:
                sel.unregister(key.fileobj)
                tail = tail[tail.index(marker) + len(marker):]
            tails[key.data] = tail[-4096:]
    for c in clients:
        c.s.setblocking(True)
        c.buf = b""


def test_memory_budget_stops_reading_instead_of_growing(chat):
    """Clients that stop reading while a writer fills their queues: once the bytes held
    (queues and pending input) reach memory_budget the server stops reading the writer
    instead of growing; when the readers drain, the writer goes on and nothing is lost."""
    n = 5
    ch = chat(sendq=str(1 << 20), memory_budget=str(BUDGET), flood_rate="10000",
              flood_burst="100000").start()
    assert ch.admin.metric("netwall_chat_memory_budget_bytes") == BUDGET
    slow = []
    for i in range(n):
        s = Irc(ch.port)
        s.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.register(f"slow{i}")
        s.expect(r" 001 ")
        s.send("JOIN #x")
        s.expect(r" 366 ")
        slow.append(s)
    a = ch.client("writer")
    a.send("JOIN #x")
    a.expect(r" 366 ")
    text = "y" * 400
    sent = 0
    while ch.admin.metric("netwall_chat_memory_waits_total") == 0:
        assert sent < 100000, "the budget never stopped the writer"
        a.s.sendall("".join(f"PRIVMSG #x :{sent + k} {text}\r\n" for k in range(20)).encode())
        sent += 20
    held = ch.admin.metric("netwall_chat_memory_held_bytes")
    print(f"held {held:.0f} bytes at the budget ({BUDGET}) after {sent} lines")
    # over the budget by at most what was in flight: each client's input (16 KiB read
    # ahead) and one line's delivery to the channel
    assert held <= BUDGET + (n + 1) * (16384 + 512), held
    drain(slow, f"PRIVMSG #x :{sent - 1} ".encode())   # the readers drain, all at once
    a.send("PRIVMSG #x :after the wait")
    drain(slow, b"PRIVMSG #x :after the wait\r\n")
    assert ch.admin.metric("netwall_chat_dropped_total", reason="sendq") == 0
    assert ch.admin.metric("netwall_chat_memory_held_bytes") < BUDGET


def test_out_of_descriptors_rests_instead_of_spinning(procs, tmp_path):
    """With 64 descriptors and 80 connections waiting, accept() runs out: the listener
    rests (accept_paused) instead of spinning on the backlog, and serves again once
    descriptors come back."""
    ch = Chat(procs, tmp_path, max_per_source="1000")
    ch.proc = procs.start("chat", ["prlimit", "--nofile=64:64", NETWALL_BIN, "chat", "serve",
                                   "-c", ch.config], check_exit=True)
    wait_until(lambda: admin_answers(ch.admin.port), 15, "chat admin listener")
    mark = ch.proc.mark()
    held = []
    try:
        for _ in range(80):
            held.append(socket.create_connection(("127.0.0.1", ch.port), timeout=5))
        ch.proc.wait_event("accept_paused", since=mark, timeout=10)
    finally:
        for s in held:
            s.close()
    c = wait_until(lambda: ch.client("after"), 15, "a client to be served again")
    c.send("PING :back")
    c.expect(r"PONG .*back")
