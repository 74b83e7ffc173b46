"""deploy/grafana/: the dashboard against docs/metrics.md (names, histogram suffixes, labels,
datasource, ids), and the README's scrape config run for real: Prometheus scrapes a gateway,
an agent, an intake and a chat that require the admin token, then every panel's query is
evaluated against what it collected. The same Prometheus loads deploy/prometheus/alerts.yml:
every rule evaluates against the real series without an error, none is raised while all is
well, and stopping the agent makes the tunnel and admin-endpoint alerts active."""

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from conftest import NETWALL_BIN, REPO, free_port, ini_text, require, svc, wait_until
from hl7util import intake, msg  # noqa: F401  (intake: the fixture)

DASH = REPO / "deploy" / "grafana" / "netwall.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
README = REPO / "deploy" / "grafana" / "README.md"
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset"}
FUNCTIONS = {"sum", "min", "max", "avg", "count", "group", "topk", "bottomk", "quantile",
             "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile",
             "abs", "clamp_min", "clamp_max", "max_over_time", "min_over_time",
             "avg_over_time", "sum_over_time", "count_over_time", "last_over_time",
             "label_replace", "vector", "scalar", "time", "resets", "changes"}
# documented metrics the dashboard leaves out on purpose (none yet): a new metric has to be
# added to the dashboard or here
UNSHOWN = {
    # on /metrics and the status pages, not (yet) panels
    "netwall_intake_reused_control_id_total", "netwall_intake_deliveries_in_flight",
    "netwall_chat_logins_pending", "netwall_chat_logins_busy_total",
    "netwall_intake_stalled_frames_total", "netwall_intake_warnings_total",
}


def documented():
    """{name: (type, {labels})} from the tables of docs/metrics.md."""
    out = {}
    for line in (REPO / "docs" / "metrics.md").read_text().splitlines():
        m = re.match(r"^\| `(netwall_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \|", line)
        if m:
            labels = {x.strip() for x in m.group(3).split(",") if x.strip() not in ("", "—")}
            old = out.get(m.group(1), (m.group(2), set()))
            out[m.group(1)] = (m.group(2), old[1] | labels)
    assert len(out) > 30, "docs/metrics.md tables not found"
    return out


def load():
    return json.loads(DASH.read_text())


def all_panels(d):
    for p in d["panels"]:
        yield p
        yield from p.get("panels", [])


def targets(d):
    """(panel, target) for every query of every panel."""
    for p in all_panels(d):
        for t in p.get("targets", []):
            yield p, t


def parse(expr):
    """(metric names, functions, label names used) of a PromQL expression."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"", e))
    for grp in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", e):
        labels.update(x.strip() for x in grp.split(",") if x.strip())
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names, funcs = [], set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", e):
        tok = m.group(0)
        if e[m.end():].lstrip().startswith("("):
            funcs.add(tok)
        elif tok not in KEYWORDS:
            names.append(tok)
    return names, funcs, labels


def base_metric(name, docs):
    """The documented metric behind `name` (a histogram's _bucket/_sum/_count), or a failure."""
    if name in docs:
        assert docs[name][0] != "histogram", f"{name} is a histogram: use _bucket, _sum or _count"
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and docs.get(name[:-len(suffix)], ("",))[0] == "histogram":
            return name[:-len(suffix)]
    raise AssertionError(f"{name} is not in docs/metrics.md")


def test_dashboard_shape_datasource_and_variables():
    d = load()
    assert 36 <= d["schemaVersion"] <= 41
    ids = [p["id"] for p in all_panels(d)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert all(isinstance(i, int) for i in ids)
    for p in all_panels(d):
        assert isinstance(p.get("title"), str) and p["title"].strip(), p
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] == "row":
            assert p.get("datasource", DS) == DS
            continue
        assert p["datasource"] == DS, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DS, p["title"]
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == ["Gateway", "Agent", "Intake", "Chat"]
    var = {v["name"]: v for v in d["templating"]["list"]}
    assert var["DS_PROMETHEUS"]["type"] == "datasource"
    assert var["DS_PROMETHEUS"]["query"] == "prometheus"
    inst = var["instance"]
    assert inst["type"] == "query" and inst["datasource"] == DS
    assert inst["multi"] and inst["includeAll"]
    assert re.fullmatch(r'label_values\(\{__name__=~"netwall_\.\+"\}, instance\)',
                        inst["query"]["query"])
    # every datasource reference anywhere is the variable (or Grafana's built-in annotations)
    refs = []

    def walk(node):
        if isinstance(node, dict):
            if "datasource" in node:
                refs.append(node["datasource"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(d)
    builtin = {"type": "grafana", "uid": "-- Grafana --"}
    assert refs and all(r in (DS, builtin) for r in refs), [r for r in refs if r not in (DS, builtin)]


def test_every_query_uses_only_documented_metrics_and_labels():
    d, docs = load(), documented()
    used = set()
    for p, t in targets(d):
        expr = t["expr"]
        names, funcs, labels = parse(expr)
        assert names, f"{p['title']}: no metric in {expr}"
        assert funcs <= FUNCTIONS, f"{p['title']}: unknown functions {funcs - FUNCTIONS}"
        bases = [base_metric(n, docs) for n in names]
        used.update(bases)
        allowed = {"instance", "job"}
        for n, b in zip(names, bases):
            allowed |= docs[b][1] | ({"le"} if n.endswith("_bucket") else set())
        assert labels <= allowed, f"{p['title']}: labels {labels - allowed} in {expr}"
        assert 'instance=~"$instance"' in expr, f"{p['title']}: not filtered by $instance"
        if "histogram_quantile" in funcs:
            assert "_bucket" in expr and re.search(r"by \((?:[^)]*, )?le\b", expr), expr
    for must in ("netwall_tunnels_up", "netwall_connections_open", "netwall_connections_total",
                 "netwall_rejected_total", "netwall_intake_messages_received_total",
                 "netwall_intake_messages_accepted_total", "netwall_intake_duplicates_total",
                 "netwall_intake_rejected_total", "netwall_intake_ack_seconds",
                 "netwall_intake_queue_depth", "netwall_intake_delivered_total",
                 "netwall_intake_dead_letters_total", "netwall_intake_store_failures_total",
                 "netwall_chat_clients"):
        assert must in used, must
    missing = set(docs) - used - UNSHOWN
    assert not missing, f"documented but not on the dashboard (add them, or to UNSHOWN): {missing}"
    quantiles = {re.search(r"histogram_quantile\(([0-9.]+)", t["expr"]).group(1)
                 for _, t in targets(d) if "histogram_quantile" in t["expr"]}
    assert quantiles == {"0.5", "0.99"}


def test_the_checks_can_fail():
    docs = documented()
    with pytest.raises(AssertionError):
        base_metric("netwall_intake_ack_seconds", docs)       # a histogram needs a suffix
    with pytest.raises(AssertionError):
        base_metric("netwall_tunnels_upp", docs)
    names, funcs, labels = parse('sum by (reason) (rate(netwall_x_total{instance=~"a"}[5m]))')
    assert names == ["netwall_x_total"] and funcs == {"sum", "rate"}
    assert labels == {"reason", "instance"}


def promql(expr, rate="1m"):
    """A panel's query as Prometheus takes it, Grafana's variables filled in."""
    return (expr.replace("$__rate_interval", rate).replace("$__range", "5m")
            .replace("$instance", ".*"))


def test_queries_parse_with_promtool(tmp_path):
    require("promtool")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:q{i}", "expr": promql(t["expr"])}
        for i, (_, t) in enumerate(targets(load()))]}]}
    f = tmp_path / "rules.yml"
    f.write_text(yaml.safe_dump(rules))
    r = subprocess_run(["promtool", "check", "rules", f])
    assert r.returncode == 0, r.stdout + r.stderr
    f.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "sum by (le (rate(netwall_tunnels_up[1m]))"}]}]}))
    assert subprocess_run(["promtool", "check", "rules", f]).returncode != 0


def subprocess_run(argv):
    import subprocess
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60)


# ---------------------------------------------------------------- a real scrape

def readme_scrape_config():
    text = README.read_text()
    block = re.search(r"```yaml\n# prometheus.yml\n(.*?)```", text, re.S)
    assert block, "deploy/grafana/README.md has no prometheus.yml block"
    return yaml.safe_load(block.group(1))


def prom_query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def prom_get_data(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


def values(result):
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in result}


def test_prometheus_scrapes_with_the_token_and_every_panel_query_evaluates(
        wall, intake, procs, tmp_path):
    require("prometheus")
    token = tmp_path / "admin.token"
    token.write_text("t0ken-" + "x" * 26 + "\n")
    tok = {"admin_token_file": token}

    it = intake(intake=dict(tok, proxy="on", allow="127.0.0.0/8"))
    gw = wall.gateway({"mllp": svc(proxy_protocol="v2")}, extra=tok)
    ag = wall.agent("site-a", gw, {"mllp": f"127.0.0.1:{it.port}"}, extra=tok)
    gw.proc.wait_event("tunnel_up", count=2, timeout=10)
    chat_admin = free_port()
    chat_ini = tmp_path / "chat.ini"
    chat_ini.write_text(ini_text([("chat", [
        ("plain_listen", f"127.0.0.1:{free_port()}"), ("admin", f"127.0.0.1:{chat_admin}"),
        ("open_registration", "on"), ("log_level", "info"), ("drain_timeout", "1"),
        ("admin_token_file", token)])]))
    procs.start("chat", [NETWALL_BIN, "chat", "serve", "-c", chat_ini], check_exit=True)
    admins = [gw.admin.port, ag.admin.port, it.admin.port, chat_admin]

    # the token is required: /metrics without it is refused
    for port in admins:
        wait_until(lambda: _status(port, "/healthz") == 200, 10, f"admin :{port}")
        assert _status(port, "/metrics") == 401

    cfg = readme_scrape_config()
    job = cfg["scrape_configs"][0]
    assert job["authorization"]["type"] == "Bearer"
    job["authorization"]["credentials_file"] = str(token)
    job["scrape_interval"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{p}"]} for p in admins]
    cfg["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    cfg["rule_files"] = [str(ALERTS)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    pport = free_port()
    procs.start("prometheus", ["prometheus", "--config.file", tmp_path / "prometheus.yml",
                               "--storage.tsdb.path", tmp_path / "tsdb",
                               "--web.listen-address", f"127.0.0.1:{pport}", "--log.level=warn"])

    def all_up():
        v = values(prom_query(pport, 'up{job="netwall"}'))
        return len(v) == 4 and all(x == 1 for x in v.values())
    wait_until(all_up, 20, "Prometheus to scrape the four daemons with the token",
               interval=0.3)

    # traffic: HL7 messages through the wall, so the intake's and the gateway's series move
    for i in range(5):
        c = _mllp(gw.port("mllp"))
        c.sendall(b"\x0b" + msg(f"GRAFANA-{i}") + b"\x1c\r")
        assert b"MSA|AA" in c.recv(65536)
        c.close()
    wait_until(lambda: sum(values(prom_query(
        pport, "netwall_intake_messages_received_total")).values()) >= 5,
        15, "the messages scraped", interval=0.3)
    time.sleep(2.5)   # two more scrapes, so every rate has its samples

    d = load()
    got = {}
    for p, t in targets(d):
        res = prom_query(pport, promql(t["expr"]))
        got[(p["title"], t["legendFormat"])] = res
    empty = [k for k, v in got.items() if not v]

    def one(title, legend):
        vals = [float(r["value"][1]) for r in got[(title, legend)]]
        assert len(vals) == 1, (title, legend, got[(title, legend)])
        return vals[0]

    # the gateway and the agent are told apart: each panel reads its own daemon's series
    assert one("Tunnels up", "tunnels") == 2
    gw_expr = next(t["expr"] for p, t in targets(d) if p["title"] == "Tunnels up")
    inner = re.fullmatch(r"sum\((.*)\)", gw_expr).group(1)
    assert [r["metric"]["instance"] for r in prom_query(pport, promql(inner))] == \
        [f"127.0.0.1:{gw.admin.port}"]
    assert [r["metric"]["instance"] for r in got[("Agent tunnels, per agent", "{{instance}} up")]] \
        == [f"127.0.0.1:{ag.admin.port}"]
    assert one("Agent tunnels up / configured", "up") == 2
    assert one("Agent tunnels up / configured", "configured") == 2
    assert one("Messages", "received") > 0 and one("Messages", "accepted") > 0
    for q in ("p50", "p99"):
        v = one("ACK latency", q)
        assert 0 < v < 5 and not math.isnan(v), (q, v)
    accepted = {r["metric"].get("service"): float(r["value"][1])
                for r in got[("Visitors accepted, per service", "{{service}}")]}
    assert accepted.get("mllp", 0) > 0, accepted
    inbytes = {r["metric"].get("service"): float(r["value"][1])
               for r in got[("Visitor bytes, per service", "{{service}} from visitors")]}
    assert inbytes.get("mllp", 0) > 0, inbytes
    assert one("Gateway streams and failures", "streams open") >= 0
    assert one("Clients and channels", "clients") == 0
    # nothing that should have data came back empty (labelled series that only appear
    # after a refusal or a drop may)
    may_be_empty = {"Visitors refused, by service and reason", "Messages rejected, by reason",
                    "Chat refusals and drops", "Messages in the store, by state",
                    "Agent target checks failed, by result"}
    assert {k for k in empty if k[0] not in may_be_empty} == set(), empty
    since_last = one("Waiting: the oldest undelivered message, the time since the last message",
                     "since the last message")
    assert 0 <= since_last < 60, since_last

    # the alerting rules: each evaluated against the real series, without an error; while
    # all is well none is pending or firing
    def rules_evaluated():
        rules = [r for g in prom_get_data(pport, "/api/v1/rules")["groups"]
                 for r in g["rules"]]
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] == "err"]
        assert not bad, bad
        return len(rules) >= 11 and all(r["health"] == "ok" for r in rules) and rules
    rules = wait_until(rules_evaluated, 20, "every alerting rule evaluated", interval=0.3)
    assert {r["name"] for r in rules} >= {"NetwallGatewayNoTunnel", "NetwallIntakeDeadLetters"}
    assert prom_get_data(pport, "/api/v1/alerts")["alerts"] == []

    # the agent goes: the gateway has no tunnel, the agent's endpoint does not answer; both
    # rules become active (pending: their `for` is minutes)
    ag.proc.stop()

    def active():
        got = {(a["labels"]["alertname"], a["labels"]["instance"])
               for a in prom_get_data(pport, "/api/v1/alerts")["alerts"]}
        want = {("NetwallGatewayNoTunnel", f"127.0.0.1:{gw.admin.port}"),
                ("NetwallAdminDown", f"127.0.0.1:{ag.admin.port}")}
        return want <= got and got
    wait_until(active, 20, "the tunnel and admin-endpoint alerts to become active",
               interval=0.3)


def _status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _mllp(port):
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s
