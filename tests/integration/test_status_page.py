"""The admin listener's HTML status page, loaded by a real browser (headless Chromium) from a
running gateway and intake and checked against what the daemons did; the admin token
(Bearer and Basic); the agent's and the chat's pages. Screenshots are saved under
build/test-output/status/ (or $NETWALL_TEST_OUTPUT)."""

import base64
import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, echo_works, svc, wait_until
from hl7util import frame, intake, emar, msg  # noqa: F401

CHROMIUM = shutil.which("chromium")
OUT = Path(os.environ.get("NETWALL_TEST_OUTPUT", REPO / "build" / "test-output")) / "status"
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(scripts/deps.sh installs it)")
TOKEN = "page-token-0123456789abcdef"


def browser(url, tmp_path, screenshot=None):
    """Loads url in headless Chromium; returns the DOM it rendered. With screenshot, also
    saves a PNG of the page there."""
    profile = tmp_path / "chromium-profile"
    base = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run", f"--user-data-dir={profile}"]
    r = subprocess.run(base + ["--dump-dom", url], capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.unlink(missing_ok=True)
        s = subprocess.run(base + [f"--screenshot={screenshot}", "--window-size=1100,1000",
                                   url], capture_output=True, timeout=90)
        assert s.returncode == 0, s.stderr.decode(errors="replace")[-2000:]
        png = screenshot.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, \
            f"screenshot {screenshot}: {len(png)} bytes"
    return r.stdout.decode()


def tile(dom, ident):
    """The value of the tile with id ident."""
    m = re.search(rf'id="{ident}"><b>([^<]*)</b>', dom)
    assert m, f"no tile {ident!r} in the page"
    return m.group(1)


def get(port, path="/", auth=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


@needs_chromium
def test_intake_page_in_a_browser_shows_the_intake_state(intake, emar, tmp_path):
    api = emar()
    it = intake(emar=api)
    with it.client() as c:
        for i in range(10):
            assert b"MSA|AA|PAGE-%d" % i in c.call(msg(f"PAGE-{i}", pid="PATIENT-7731"))
        c.call(msg("PAGE-0", pid="PATIENT-7731"))               # a duplicate (same bytes)
        c.send_raw(frame(b"this is not HL7 PATIENT-7731"))      # a parse error
        assert b"MSA|AR" in c.read_frame()
        bad = msg("PAGE-BAD", pid="PATIENT-7731").replace(b"|P|2.5.1", b"|P|9.9")
        assert b"MSA|AR|PAGE-BAD" in c.call(bad)                 # a header error
    api.wait_deliveries(10)
    url = f"http://127.0.0.1:{it.admin.port}/"

    def delivered():
        dom = browser(url, tmp_path)
        return dom if tile(dom, "store_delivered") == "10" else None
    dom = wait_until(delivered, 30, "the page to show 10 delivered")
    dom = browser(url, tmp_path, screenshot=OUT / "intake.png")
    assert "netwall <span id=\"role\">intake</span>" in dom
    assert tile(dom, "received") == "13"
    assert tile(dom, "accepted") == "10"
    assert tile(dom, "duplicates") == "1"
    assert tile(dom, "reused_control_id") == "0"
    assert tile(dom, "rejected") == "2"
    assert tile(dom, "store_waiting") == "0"
    assert tile(dom, "store_dead") == "0"
    assert tile(dom, "delivered_now") == "10"
    assert tile(dom, "queue_depth") == "0"
    assert re.search(r'id="received_chart" data-total="13"', dom)
    # the last errors name reasons and control IDs, never message content
    errors = dom.split('id="errors"')[1].split("</table>")[0]
    assert '<td class="reason">parse</td>' in errors
    assert '<td class="reason">header</td>' in errors and "PAGE-BAD" in errors
    assert "PATIENT-7731" not in dom and "this is not HL7" not in dom
    # the page agrees with /metrics
    assert it.metric("netwall_intake_messages", state="delivered") == 10
    assert it.metric("netwall_intake_messages_received_total") == 13


@needs_chromium
def test_gateway_page_in_a_browser_shows_services_tunnels_and_refusals(wall, echo, tmp_path):
    e = echo()
    gw = wall.gateway({"web": svc(allow="127.0.0.1/32"), "spare": svc(agents=("site-b",))})
    wall.agent("site-a", gw, {"web": f"127.0.0.1:{e.port}"})
    gw.wait_tunnels(2)
    port = gw.port("web")
    for _ in range(3):
        assert echo_works(port)
    for _ in range(2):   # a source outside allow, refused
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        s.settimeout(5)
        try:
            s.recv(1)
        except OSError:
            pass
        s.close()
    gw.admin.wait_metric("netwall_rejected_total", lambda v: v == 2, service="web",
                         reason="source")
    dom = browser(f"http://127.0.0.1:{gw.admin.port}/", tmp_path,
                  screenshot=OUT / "gateway.png")
    assert tile(dom, "tunnels_up") == "2"
    assert tile(dom, "visitors_total") == "3"
    assert tile(dom, "refused_total") == "2"
    row = re.search(r'<tr data-service="web">(.*?)</tr>', dom).group(1)
    assert '<span class="up">site-a up</span>' in row
    assert '<td class="n accepted">3</td>' in row and "2 / 0 / 0" in row
    spare = re.search(r'<tr data-service="spare">(.*?)</tr>', dom).group(1)
    assert '<span class="down">site-b down</span>' in spare
    refused = dom.split('id="refused"')[1].split("</table>")[0]
    assert re.search(r"<td>127\.0\.0\.2</td><td>web</td><td>not_allowed</td>"
                     r'<td class="n">2</td>', refused), refused
    assert dom.count("<td>site-a</td>") == 2          # both tunnels listed
    assert re.search(r'id="visits_chart" data-total="3"', dom)
    # per-service bytes: the echo carried the same bytes both ways
    b_in = gw.metric("netwall_service_bytes_in_total", service="web")
    assert b_in > 0 and gw.metric("netwall_service_bytes_out_total", service="web") == b_in


def test_agent_and_chat_pages(wall, echo, procs, tmp_path):
    from test_chat import Chat
    e = echo()
    gw = wall.gateway({"web": svc()})
    ag = wall.agent("site-a", gw, {"web": f"127.0.0.1:{e.port}"})
    gw.wait_tunnels(2)
    assert echo_works(gw.port("web"))
    status, dom, _ = get(ag.admin.port)
    assert status == 200
    assert tile(dom, "tunnels_up") == "2" and tile(dom, "streams_total") == "1"
    assert f"<td>web</td><td>127.0.0.1:{e.port}</td>" in dom
    ch = Chat(procs, tmp_path).start()
    a = ch.client("alice")
    a.send("JOIN #pharmacy")
    a.expect(r" 366 ")
    a.send("PRIVMSG #pharmacy :hello")
    wait_until(lambda: tile(get(ch.admin.port)[1], "lines") != "0", 10, "lines counted")
    dom = get(ch.admin.port)[1]
    assert tile(dom, "clients") == "1" and tile(dom, "channels") == "1"
    assert "<td>#pharmacy</td><td class=\"n\">1</td>" in dom
    assert "hello" not in dom


@pytest.fixture
def token_file(tmp_path):
    p = tmp_path / "admin.token"
    p.write_text(TOKEN + "\n")
    p.chmod(0o600)
    return p


def test_admin_token_is_required_but_not_for_healthz(intake, token_file, tmp_path):
    it = intake(intake={"admin_token_file": token_file})
    port = it.admin.port
    for path in ("/", "/metrics", "/status"):
        status, body, headers = get(port, path)
        assert status == 401 and "Bearer" in body, path
        assert headers["WWW-Authenticate"].startswith("Basic realm=")
        assert get(port, path, "Bearer wrong-token-0123456789")[0] == 401
        assert get(port, path, f"Bearer {TOKEN}")[0] == 200
    assert get(port, "/healthz")[0] == 200
    basic = base64.b64encode(f"ops:{TOKEN}".encode()).decode()
    assert get(port, "/", f"Basic {basic}")[0] == 200
    wrong = base64.b64encode(b"ops:nope").decode()
    assert get(port, "/", f"Basic {wrong}")[0] == 401
    # a rotated token applies on SIGHUP; the old one stops working
    token_file.write_text("rotated-token-abcdefghijklmnop\n")
    mark = it.proc.mark()
    it.proc.signal(__import__("signal").SIGHUP)
    it.proc.wait_event("reloaded", since=mark)
    assert get(port, "/metrics", f"Bearer {TOKEN}")[0] == 401
    assert get(port, "/metrics", "Bearer rotated-token-abcdefghijklmnop")[0] == 200


@needs_chromium
def test_browser_opens_a_token_protected_page_with_basic_auth(intake, token_file, tmp_path):
    it = intake(intake={"admin_token_file": token_file})
    dom = browser(f"http://127.0.0.1:{it.admin.port}/", tmp_path)
    assert 'id="received"' not in dom     # the browser is asked to log in; nothing shown
    dom = browser(f"http://ops:{TOKEN}@127.0.0.1:{it.admin.port}/", tmp_path)
    assert tile(dom, "received") == "0"


def test_admin_token_file_errors_stop_the_start(tmp_path):
    from conftest import NETWALL_BIN
    short = tmp_path / "short.token"
    short.write_text("abc\n")
    cfg = tmp_path / "intake.ini"
    cfg.write_text(f"[intake]\nlisten = 127.0.0.1:1\nstore = {tmp_path}/i.db\n"
                   f"admin_token_file = {short}\n")
    r = subprocess.run([NETWALL_BIN, "intake", "-c", cfg], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert f"intake.ini:4: admin_token_file: '{short}': want a token of 16 to 1024 " \
           "characters" in r.stderr
    r = subprocess.run([NETWALL_BIN, "check", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "admin_token_file" in r.stderr


def test_metric_names_follow_the_conventions_and_are_documented(wall, echo, intake, procs,
                                                                tmp_path):
    """Every family a running daemon exports is in docs/metrics.md with its type, and every
    documented one is exported: counters end in _total, histograms in _seconds, names are
    netwall_ and lower case."""
    from test_chat import Chat
    e = echo()
    gw = wall.gateway({"web": svc()})
    ag = wall.agent("site-a", gw, {"web": f"127.0.0.1:{e.port}"})
    gw.wait_tunnels(2)
    it = intake()
    it.admin_status()                      # asks the committer for counts by state
    wait_until(lambda: "netwall_intake_messages{" in it.admin.metrics_text(), 10,
               "counts by state")
    ch = Chat(procs, tmp_path).start()
    doc = (REPO / "docs" / "metrics.md").read_text()
    documented = {}
    for part, body in re.findall(r"^## (\w+).*?\n(.*?)(?=^## |\Z)", doc, re.S | re.M):
        for name, typ in re.findall(r"^\| `(netwall_\w+)` \| (\w+) \|", body, re.M):
            documented[(part.lower(), name)] = typ
    exported = {}
    for part, port in (("gateway", gw.admin.port), ("agent", ag.admin.port),
                       ("intake", it.admin.port), ("chat", ch.admin.port)):
        _, text, _ = get(port, "/metrics")
        for name, typ in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
            exported[(part, name)] = typ
            assert re.fullmatch(r"netwall_[a-z0-9_]+", name), name
            assert (typ == "counter") == name.endswith("_total"), name
            if typ == "histogram":
                assert name.endswith("_seconds"), name
    assert exported == documented
