"""The intake's message browser on its admin listener (browse = on): off unless asked, never
without admin_token_file; a search form and its results, a message field by field with its
ACK and delivery record, a replay button for dead messages; every value HTML-escaped, no
scripts, no framing, no caching; the replay protected against forged cross-site POSTs and
never done by a GET; every view recorded in the audit trail under the label of the token
that signed in, and refused when the record cannot be written; bounded queries; headless
Chromium renders the pages (screenshots under the test's directory)."""

import http.client
import re
import signal
import socket
import subprocess
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import NETWALL_BIN, wait_until
from hl7util import ack_code, emar, intake, msg  # noqa: F401
from test_audit import pg_url
from test_status_page import browser, needs_chromium

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"
HOSTILE = "<script>alert(\"x\")</script>'\\T\\co"   # \T\ is HL7's escaped '&'


def request(port, path, token=ALICE, method="GET", body=None, headers=None, timeout=10):
    """(status, headers, text) of one request; redirects are not followed."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if body is not None:
        h.setdefault("Content-Type", "application/x-www-form-urlencoded")
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    out = r.status, r.headers, r.read().decode(errors="replace")
    c.close()
    return out


def csrf_of(page):
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert m, "no replay form on the page"
    return m.group(1)


@pytest.fixture
def tokens(tmp_path):
    p = tmp_path / "admin.tokens"
    p.write_text(f"alice {ALICE}\n\nbob\t{BOB}\n")
    return p


@pytest.fixture
def browsing(intake, emar, tokens):
    """An intake with the browser on, whose EMAR dead-letters (400) every delivery."""
    api = emar(mode="400")
    it = intake(emar=api, intake={"browse": "on", "admin_token_file": tokens},
                deliver={"max_attempts": "1"})
    with it.client() as c:
        for i in range(3):
            assert ack_code(c.call(msg(f"BR-{i}", pid="MRN-77"))) == "AA"
        hostile = msg("BR-X", pid="MRN-88").replace(b"DOE^JANE^Q", HOSTILE.encode() + b"^JANE")
        assert ack_code(c.call(hostile)) == "AA"
    wait_until(lambda: len(it.rows(state="dead")) == 4, 20, "four dead messages")
    it.api = api
    return it


def ids_of(it, *ctrls):
    """The ids of the messages with these control IDs, oldest first."""
    return sorted(r["id"] for r in it.rows() if r["control_id"] in ctrls)


MRN77 = ("BR-0", "BR-1", "BR-2")


def audit(it):
    return it.messages("audit")


def test_browse_is_off_unless_asked(intake, tokens):
    it = intake(intake={"admin_token_file": tokens})
    assert request(it.admin.port, "/messages?patient=MRN-77")[0] == 404
    assert request(it.admin.port, "/messages/1")[0] == 404


def test_browse_without_token_file_is_a_config_error(tmp_path):
    cfg = tmp_path / "intake.ini"
    cfg.write_text(f"[intake]\nlisten = 127.0.0.1:1\nstore = {tmp_path}/i.db\nbrowse = on\n")
    for cmd in (["intake", "-c", cfg], ["check", cfg]):
        r = subprocess.run([NETWALL_BIN, *cmd], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert "browse: on needs admin_token_file" in r.stderr, r.stderr
        assert len([ln for ln in r.stderr.splitlines() if "browse" in ln]) == 1


def test_search_show_escape_headers_and_audit(browsing):
    it, port = browsing, browsing.admin.port
    ids = ids_of(it, *MRN77)
    assert request(port, "/messages?patient=MRN-77", token=None)[0] == 401
    assert request(port, "/messages?patient=MRN-77", token="wrong-token-0123456789")[0] == 401
    assert audit(it) in ([], None)                   # nothing was shown, nothing recorded
    # the form alone shows nothing and records nothing
    code, h, page = request(port, "/messages")
    assert code == 200 and 'id="search"' in page and 'id="results"' not in page
    assert audit(it) in ([], None)
    # HEAD is no view: refused before the store is read, so nothing is recorded either
    for path in ("/messages?patient=MRN-77", f"/messages/{ids[0]}", "/messages"):
        code, h, _ = request(port, path, method="HEAD")
        assert code == 405 and h["Allow"] == "GET", (path, code)
    code, h, _ = request(port, "/messages", method="POST", body="")
    assert code == 405 and h["Allow"] == "GET"
    assert audit(it) in ([], None)
    # the search: newest first, every id linked, headers that allow no script and no frame
    code, h, page = request(port, "/messages?patient=MRN-77&state=dead&reason=ticket+42")
    assert code == 200, page
    assert h["Content-Security-Policy"].startswith("default-src 'none'; style-src "
                                                   "'unsafe-inline'")
    assert h["X-Frame-Options"] == "DENY" and h["Cache-Control"] == "no-store"
    assert h["Referrer-Policy"] == "no-referrer"
    listed = [int(x) for x in re.findall(r'<a href="/messages/(\d+)">', page)]
    assert listed == ids[::-1]
    assert "<script" not in page.lower()
    a = audit(it)[0]
    assert (a["who"], a["via"], a["action"]) == ("alice", "browser", "search")
    assert a["what"] == "search --patient MRN-77 --state dead --limit 50"
    assert sorted(a["message_ids"]) == ids and a["reason"] == "ticket 42"
    # paging: a full page links to the older ones
    code, _, page = request(port, "/messages?patient=MRN-77&limit=2")
    older = re.search(r'id="older" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert older == f"/messages?patient=MRN-77&limit=2&before={ids[1]}"
    code, _, page = request(port, older)
    assert [int(x) for x in re.findall(r'<a href="/messages/(\d+)">', page)] == [ids[0]]
    # one message, field by field, with its ACK and delivery record, signed by bob
    code, h, page = request(port, f"/messages/{ids[0]}", token=BOB)
    assert code == 200 and h["X-Frame-Options"] == "DENY"
    assert re.search(r'PID-3\.1</td><td>MRN-77<', page)
    assert re.search(r'MSH-10</td><td>BR-0<', page)
    assert re.search(r'id="ack">MSH\|[^<]*\nMSA\|AA\|BR-0', page)
    assert re.search(r'id="state">dead<', page) and re.search(r'id="http_status">400<', page)
    assert re.search(r'id="attempts">1<', page)
    a = audit(it)[0]
    assert (a["who"], a["action"], a["what"], a["message_ids"]) == \
        ("bob", "show", f"show {ids[0]}", [ids[0]])
    # a sender's markup is shown as text
    xid = ids_of(it, "BR-X")[0]
    code, _, page = request(port, f"/messages/{xid}")
    assert "<script" not in page.lower()
    assert ("PID-5.1</td><td>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;co<"
            in page)
    code, _, page = request(port, "/messages?patient=MRN-88")
    assert "&lt;script&gt;" in page.lower() and "<script" not in page.lower()


def test_bounds_and_bad_terms(browsing):
    port = browsing.admin.port
    q = "patient=" + "A" * 128 + "&name=" + "B" * 128 + "&reason=" + "C" * 128
    q += "&" * (1024 - len(q))                       # empty pairs: skipped, but counted
    assert request(port, "/messages?" + q)[0] == 200
    assert request(port, "/messages?" + q + "&")[0] == 414
    assert request(port, "/messages?patient=" + "A" * 1100)[0] == 414
    assert request(port, "/messages?patient=" + "A" * 3000)[0] == 414   # the listener's
    assert request(port, "/messages?patient=" + "A" * 129)[0] == 400
    assert request(port, "/messages?patient=" + "A" * 128)[0] == 200
    assert request(port, "/messages?limit=201")[0] == 400
    assert request(port, "/messages?limit=200&state=dead")[0] == 200
    for q in ("nosuch=1", "state=sleeping", "date=yesterday", "since=2026-13-01",
              "patient=%zz", "patient=a%00b", "patient=A%4", "patient=1&patient=2",
              "before=-1"):
        code, _, text = request(port, "/messages?" + q)
        assert code == 400, (q, code, text)
    code, _, page = request(port, "/messages?patient=MRN%2D7%37")  # an escape at the end
    assert code == 200 and page.count('<a href="/messages/') == 3
    assert request(port, "/messages/99999")[0] == 404
    assert request(port, "/messages/1x")[0] == 404
    body = "csrf=" + "0" * 64
    body += "&" * (1024 - len(body))
    assert request(port, "/messages/1/replay", method="POST", body=body)[0] == 403
    assert request(port, "/messages/1/replay", method="POST", body=body + "&")[0] == 413


def test_replay_only_by_a_post_from_the_page(browsing):
    it, port = browsing, browsing.admin.port
    mid = ids_of(it, *MRN77)[0]
    page = request(port, f"/messages/{mid}")[2]
    token = csrf_of(page)
    path = f"/messages/{mid}/replay"
    form = "csrf=" + token
    n_audit = len(audit(it))
    # a GET never replays; nor a POST without the page's value, with bob's token for
    # alice's value, or that a browser says came from another site
    assert request(port, path)[0] == 405
    assert request(port, path, method="POST", body="csrf=" + "0" * 64)[0] == 403
    assert request(port, path, method="POST", body="")[0] == 403
    assert request(port, path, token=BOB, method="POST", body=form)[0] == 403
    assert request(port, path, method="POST", body=form,
                   headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    for origin in ("http://evil.example", "https://evil.example", "null",
                   f"ftp://127.0.0.1:{port}", f"https://127.0.0.1:{port}.evil.example",
                   f"https://127.0.0.1:{port + 1}", f"HTTPS://127.0.0.1:{port}x"):
        assert request(port, path, method="POST", body=form,
                       headers={"Origin": origin})[0] == 403, origin
    assert request(port, path, method="POST", body=form, token=None)[0] == 401
    assert [r for r in it.rows(state="dead") if r["id"] == mid]
    assert len(audit(it)) == n_audit
    # from the page: replayed, recorded, delivered
    it.api.control("ok")
    code, h, _ = request(port, path, method="POST", body=form,
                         headers={"Origin": f"http://127.0.0.1:{port}",
                                  "Sec-Fetch-Site": "same-origin"})
    assert code == 303 and h["Location"] == f"/messages/{mid}"
    a = audit(it)[0]
    assert (a["who"], a["action"], a["message_ids"]) == ("alice", "replay", [mid])
    wait_until(lambda: [r for r in it.rows(state="delivered") if r["id"] == mid], 20,
               "the replayed message delivered")
    # a delivered message has no replay button and cannot be replayed here
    assert 'id="replay"' not in request(port, f"/messages/{mid}")[2]
    assert request(port, path, method="POST", body=form)[0] == 409
    # behind a proxy that ends TLS the browser's Origin is https: taken as well
    other = ids_of(it, *MRN77)[1]
    form = "csrf=" + csrf_of(request(port, f"/messages/{other}")[2])
    code, h, _ = request(port, f"/messages/{other}/replay", method="POST", body=form,
                         headers={"Origin": f"https://127.0.0.1:{port}",
                                  "Sec-Fetch-Site": "same-origin"})
    assert code == 303 and h["Location"] == f"/messages/{other}"
    assert (audit(it)[0]["action"], audit(it)[0]["message_ids"]) == ("replay", [other])


def test_refused_when_the_audit_record_cannot_be_written(browsing):
    it, port = browsing, browsing.admin.port
    mid = ids_of(it, *MRN77)[0]
    form = "csrf=" + csrf_of(request(port, f"/messages/{mid}")[2])
    r = subprocess.run(["sqlite3", it.store, "CREATE TRIGGER no_audit BEFORE INSERT ON audit "
                        "BEGIN SELECT RAISE(ABORT, 'no'); END"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for path in ("/messages?patient=MRN-77", f"/messages/{mid}"):
        code, _, text = request(port, path)
        assert code == 503 and "MRN-77" not in text and "audit record" in text
    code, _, _ = request(port, f"/messages/{mid}/replay", method="POST", body=form)
    assert code == 503
    assert [r for r in it.rows(state="dead") if r["id"] == mid]


@needs_chromium
def test_pages_in_a_browser(browsing, tmp_path):
    it, port = browsing, browsing.admin.port
    mid = ids_of(it, *MRN77)[0]
    before = len(audit(it) or [])
    base = f"http://ops:{urllib.parse.quote(ALICE)}@127.0.0.1:{port}"
    dom = browser(f"{base}/messages?patient=MRN-77", tmp_path,
                  screenshot=tmp_path / "browse-search.png")
    assert 'id="results"' in dom and f'href="/messages/{mid}"' in dom
    assert re.search(r'id="who">alice<', dom)
    dom = browser(f"{base}/messages/{mid}", tmp_path, screenshot=tmp_path / "browse-message.png")
    assert re.search(r'PID-3\.1</td><td>MRN-77<', dom) and 'id="replay"' in dom
    assert "MSA|AA|" in dom
    dom = browser(f"{base}/messages?patient=MRN-88", tmp_path)
    assert "&lt;script&gt;" in dom.lower()
    new = audit(it)[:len(audit(it)) - before]
    assert {a["action"] for a in new} == {"search", "show"}
    assert {(a["who"], a["via"]) for a in new} == {("alice", "browser")}
    assert (tmp_path / "browse-search.png").stat().st_size > 10_000


def test_on_postgresql(intake, postgres, tokens):
    pg = postgres()
    it = intake(store=pg_url(pg), intake={"browse": "on", "admin_token_file": tokens})
    with it.client() as c:
        assert ack_code(c.call(msg("PG-1", pid="MRN-PG"))) == "AA"
    port = it.admin.port
    code, _, page = request(port, "/messages?patient=MRN-PG", token=BOB)
    assert code == 200
    mid = int(re.findall(r'<a href="/messages/(\d+)">', page)[0])
    code, _, page = request(port, f"/messages/{mid}", token=BOB)
    assert code == 200 and re.search(r'PID-3\.1</td><td>MRN-PG<', page)
    a = audit(it)
    assert [(x["who"], x["via"], x["action"]) for x in a[:2]] == \
        [("bob", "browser", "show"), ("bob", "browser", "search")]


def test_browse_follows_sighup(intake, tokens):
    it = intake(intake={"admin_token_file": tokens})
    with it.client() as c:
        assert ack_code(c.call(msg("HUP-1", pid="MRN-HUP"))) == "AA"
    assert request(it.admin.port, "/messages?patient=MRN-HUP")[0] == 404
    it.config.write_text(it.config.read_text().replace("[intake]\n", "[intake]\nbrowse = on\n"))
    it.proc.signal(signal.SIGHUP)
    wait_until(lambda: request(it.admin.port, "/messages?patient=MRN-HUP")[0] == 200, 10,
               "the browser on after SIGHUP")
    page = request(it.admin.port, "/messages?patient=MRN-HUP")[2]
    assert page.count('<a href="/messages/') == 1


def psql(pg, sql):
    r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d",
                        "netwall", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


AUDIT_LOCKS = ("SELECT count(*) FILTER (WHERE l.granted), count(*) FILTER (WHERE NOT l.granted) "
               "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
               "WHERE c.relname = 'audit' AND l.mode = '{}'")


def test_a_stalled_store_holds_no_ack(intake, postgres, tokens):
    """The browser's store work runs on a thread of its own: while its audit write waits
    on a lock, senders are still answered; four more pages wait in its queue, the next is
    refused at once; a client gone while its page waits costs nothing; all the pages come
    once the lock goes."""
    pg = postgres()
    it = intake(store=pg_url(pg), intake={"browse": "on", "admin_token_file": tokens})
    port, search = it.admin.port, "/messages?patient=MRN-ST"
    with it.client() as c:
        assert ack_code(c.call(msg("ST-0", pid="MRN-ST"))) == "AA"
    assert request(port, search)[0] == 200          # the browser's connection is open
    lock = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                             "-d", "netwall", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    pool = ThreadPoolExecutor(8)
    try:
        lock.stdin.write("BEGIN;\nLOCK TABLE audit IN ACCESS EXCLUSIVE MODE;\n")
        lock.stdin.flush()
        locks = AUDIT_LOCKS.format("AccessExclusiveLock")
        waiting = AUDIT_LOCKS.format("RowExclusiveLock")
        wait_until(lambda: psql(pg, locks) == "1|0", 10, "the audit table locked")
        first = pool.submit(request, port, search, timeout=60)
        wait_until(lambda: psql(pg, waiting) == "0|1", 10, "the browser's audit write waiting")
        # the loop is free: every sender is answered while the page waits
        with it.client() as c:
            for i in range(1, 4):
                assert ack_code(c.call(msg(f"ST-{i}", pid="MRN-ST"))) == "AA"
        # a client that goes while its page waits in the queue
        gone = socket.create_connection(("127.0.0.1", port))
        gone.sendall(f"GET {search} HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {ALICE}\r\n\r\n".encode())
        assert request(port, "/healthz", token=None)[0] == 200   # read before it goes
        gone.close()
        assert request(port, "/healthz", token=None)[0] == 200
        # three more fill the queue (four waiting); the fourth is refused at once
        more = [pool.submit(request, port, search, timeout=60) for _ in range(4)]
        wait_until(lambda: [f for f in more if f.done()], 30, "a page refused")
        refused = [f.result() for f in more if f.done()]
        assert [r[0] for r in refused] == [503] and refused[0][1]["Retry-After"]
        assert "MRN-ST" not in refused[0][2]
        assert not first.done() and psql(pg, waiting) == "0|1"
        lock.stdin.write("COMMIT;\n")
        lock.stdin.close()
        lock.wait(timeout=30)
        code, _, page = first.result(timeout=60)     # searched before the others came
        assert code == 200 and page.count('<a href="/messages/') == 1
        assert sorted(f.result(timeout=60)[0] for f in more) == [200, 200, 200, 503]
    finally:
        if lock.poll() is None:
            lock.kill()
        pool.shutdown(wait=False, cancel_futures=True)
    # every page made was recorded, the one nobody read too; the intake goes on
    wait_until(lambda: len([a for a in audit(it) if a["action"] == "search"]) == 6, 30,
               "six searches recorded")
    code, _, page = request(port, search)
    assert code == 200 and page.count('<a href="/messages/') == 4


def raw(port, data, shut=False):
    """The bytes answered to data sent on one connection (shut: half-closed after it)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    out = b""
    while (b := s.recv(65536)):
        out += b
    s.close()
    return out


def test_refused_to_a_page_of_another_site(browsing):
    """An <img> of another site's page carries the browser's saved Basic credentials: a GET
    would record a search or a view under the operator's label. Refused, nothing recorded."""
    it, port = browsing, browsing.admin.port
    mid = ids_of(it, *MRN77)[0]
    n = len(audit(it) or [])
    for path in ("/messages?patient=MRN-77&reason=x", f"/messages/{mid}", "/messages"):
        for h in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                  {"Origin": "http://evil.example"}, {"Origin": "null"},
                  {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"}):
            code, _, text = request(port, path, headers=h)
            assert code == 403 and "MRN-77" not in text, (path, h, code)
    assert len(audit(it) or []) == n
    # typed or bookmarked (none), from its own pages (same-origin), or with no such header
    for h in ({"Sec-Fetch-Site": "none"}, {"Sec-Fetch-Site": "same-origin",
                                           "Origin": f"http://127.0.0.1:{port}"}, {}):
        assert request(port, f"/messages/{mid}", headers=h)[0] == 200, h
    assert len(audit(it)) == n + 3


def test_half_closed_client_gets_its_page(browsing):
    """A client that shuts its sending side after the request (nc -N) still gets the page
    the worker makes."""
    it, port = browsing, browsing.admin.port
    mid = ids_of(it, *MRN77)[0]
    out = raw(port, f"GET /messages/{mid} HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {ALICE}\r\n\r\n".encode(), shut=True)
    assert out.startswith(b"HTTP/1.1 200 ") and b"MSH-10</td><td>BR-0<" in out, out[:80]


def test_whitespace_before_a_header_colon_refused(browsing):
    """RFC 9112 5.1: "Transfer-Encoding : chunked" is a 400, never a header ignored."""
    it, port = browsing, browsing.admin.port
    mid = ids_of(it, *MRN77)[0]
    auth = f"Authorization: Bearer {ALICE}\r\n".encode()
    post = f"POST /messages/{mid}/replay HTTP/1.1\r\nHost: x\r\n".encode() + auth
    for te in (b"Transfer-Encoding : chunked", b"Transfer-Encoding\t: chunked"):
        out = raw(port, post + te + b"\r\nContent-Length: 4\r\n\r\nabcd")
        assert out.startswith(b"HTTP/1.1 400 "), (te, out[:40])
    out = raw(port, b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 "), out[:40]
    assert raw(port, b"GET /healthz HTTP/1.1\r\nHost:x\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    assert [r for r in it.rows(state="dead") if r["id"] == mid]


ANSWER_MAX = 3 * 1024 * 1024      # BROWSE_ANSWER_MAX
LATER_BYTES = 16 * 1024 * 1024    # ADMIN_LATER_BYTES


def wide(ctrl, n):
    """A message whose page would be 28 times its size: n one-byte components."""
    return msg(ctrl, pid="MRN-W", segments=["ZZ1|" + "\"^" * n])


def test_message_page_bounded(browsing):
    """A message whose fields, one per row, would make a page of 5.6 MB: the page stops
    listing them short of its ceiling and says so; the ACK is still shown."""
    it, port = browsing, browsing.admin.port
    with it.client() as c:
        assert ack_code(c.call(wide("WIDE-1", 100_000))) == "AA"
        assert ack_code(c.call(wide("WIDE-2", 500))) == "AA"
    big, small = ids_of(it, "WIDE-1")[0], ids_of(it, "WIDE-2")[0]
    code, _, page = request(port, f"/messages/{big}")
    assert code == 200 and ANSWER_MAX - 64 * 1024 < len(page) <= ANSWER_MAX, len(page)
    assert re.search(r'id="truncated">page truncated at \d+ bytes: the rest is not listed; '
                     rf'use netwall messages show {big}<', page)
    assert re.search(r'MSH-10</td><td>WIDE-1<', page) and "ZZ1-1.1<" in page
    assert re.search(r'id="ack">MSH\|[^<]*\nMSA\|AA\|WIDE-1', page)
    code, _, page = request(port, f"/messages/{small}")
    assert code == 200 and 'id="truncated"' not in page and "ZZ1-1.500<" in page


def test_answers_held_in_all_bounded(browsing):
    """Pages nobody reads out hold at most 16 MiB of the intake together: five held pages of
    3 MiB each and the sixth page is refused at once (503), before the store is read; when
    a reader goes its bytes come back."""
    it, port = browsing, browsing.admin.port
    with it.client() as c:
        assert ack_code(c.call(wide("WIDE-1", 100_000))) == "AA"
    big = ids_of(it, "WIDE-1")[0]
    get = f"GET /messages/{big} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\n\r\n"
    held = []
    try:
        for _ in range(5):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(30)
            s.connect(("127.0.0.1", port))
            s.sendall(get.encode())
            head = s.recv(4096)
            assert head.startswith(b"HTTP/1.1 200 "), head[:40]
            n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
            assert n > (LATER_BYTES - ANSWER_MAX) // 5, n      # five hold more than 13 MiB
            held.append(s)
        n_audit = len(audit(it))
        code, h, text = request(port, f"/messages/{big}")
        assert code == 503 and h["Retry-After"] and "WIDE" not in text, code
        assert len(audit(it)) == n_audit
        held.pop().close()
        wait_until(lambda: request(port, "/messages?patient=MRN-77")[0] == 200, 10,
                   "a page once a held one is gone")
    finally:
        for s in held:
            s.close()


def test_stop_does_not_wait_for_a_stalled_page(intake, postgres, tokens):
    """SIGTERM while a page waits on a store that does not answer (PostgreSQL's audit table
    locked: the page would wait for statement_timeout, 30 s): the page's statement is
    cancelled and the intake is gone within its drain_timeout and a margin."""
    pg = postgres()
    it = intake(store=pg_url(pg), intake={"browse": "on", "admin_token_file": tokens,
                                          "drain_timeout": "1"})
    port, search = it.admin.port, "/messages?patient=MRN-SD"
    with it.client() as c:
        assert ack_code(c.call(msg("SD-0", pid="MRN-SD"))) == "AA"
    assert request(port, search)[0] == 200
    lock = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                             "-d", "netwall", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    pool = ThreadPoolExecutor(1)
    try:
        lock.stdin.write("BEGIN;\nLOCK TABLE audit IN ACCESS EXCLUSIVE MODE;\n")
        lock.stdin.flush()
        wait_until(lambda: psql(pg, AUDIT_LOCKS.format("AccessExclusiveLock")) == "1|0", 10,
                   "the audit table locked")
        page = pool.submit(request, port, search, timeout=60)
        wait_until(lambda: psql(pg, AUDIT_LOCKS.format("RowExclusiveLock")) == "0|1", 10,
                   "the browser's audit write waiting")
        it.proc.stopped_by_test = True
        it.proc.signal(signal.SIGTERM)
        assert it.proc.wait_exit(1 + 3) is not None, "still running 4 s after SIGTERM"
        assert it.proc.returncode == 0, it.proc.tail(20)
        try:
            code = page.result(timeout=30)[0]
        except (http.client.HTTPException, OSError):
            code = None                              # closed unanswered: the listener went
        assert code != 200
    finally:
        if lock.poll() is None:
            lock.kill()
        pool.shutdown(wait=False, cancel_futures=True)
