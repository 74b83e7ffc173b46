"""deploy/prometheus/alerts.yml: the rules checked and unit-tested by promtool on synthetic
series (deploy/prometheus/alerts_test.yml), each alert on documented metrics, tested and
documented; the metrics added for them (the age of the oldest undelivered message, the time
of the last message) read off a real intake; and a real alert raised by a real Prometheus
that scrapes a real intake whose message was dead-lettered, and cleared by the replay."""

import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import json

import pytest
import yaml

from conftest import REPO, free_port, require, wait_until
from hl7util import ack_code, emar, intake, msg  # noqa: F401  (fixtures)
from test_grafana import FUNCTIONS, base_metric, documented, parse
from test_intake_pg import pg_url

RULES_DIR = REPO / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULES_TEST = RULES_DIR / "alerts_test.yml"
DEPLOY_DOC = REPO / "docs" / "deploy.md"


def alerts():
    """[rule] of every alerting rule in alerts.yml."""
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def promtool(*args, cwd=None):
    require("promtool")
    return subprocess.run(["promtool", *[str(a) for a in args]], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_rules_check_and_pass_their_unit_tests():
    r = promtool("check", "rules", RULES)
    assert r.returncode == 0, r.stdout + r.stderr
    r = promtool("test", "rules", RULES_TEST.name, cwd=RULES_DIR)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_rule_tests_can_fail(tmp_path):
    """A threshold moved in a copy of the rules: the tests notice."""
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    text = RULES.read_text()
    assert "> 1800" in text
    (tmp_path / RULES.name).write_text(text.replace("> 1800", "> 3600"))
    r = promtool("test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert r.returncode != 0 and "NetwallIntakeNoMessages" in r.stdout + r.stderr, r.stdout


def test_every_alert_is_tested_documented_and_on_documented_metrics():
    docs = documented()
    tests = yaml.safe_load(RULES_TEST.read_text())
    deploy = DEPLOY_DOC.read_text()
    fires, silent = set(), set()
    for t in tests["tests"]:
        for case in t.get("alert_rule_test", []):
            (fires if case["exp_alerts"] else silent).add(case["alertname"])
    names = [r["alert"] for r in alerts()]
    assert len(names) == len(set(names)), names
    for want in ("NetwallAdminDown", "NetwallGatewayNoTunnel", "NetwallAgentTunnelDown",
                 "NetwallIntakeNoMessages", "NetwallIntakeQueueBacklog",
                 "NetwallIntakeDeliveryStuck", "NetwallIntakeDeliveryFailing",
                 "NetwallIntakeDeadLetters", "NetwallIntakeReusedControlId",
                 "NetwallIntakeStoreFailing", "NetwallMemoryBudgetNearFull"):
        assert want in names, want
    for r in alerts():
        name = r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning"), name
        assert r["annotations"]["summary"] and r["annotations"]["description"], name
        assert name in fires, f"{name}: no test in alerts_test.yml where it fires"
        assert name in silent, f"{name}: no test in alerts_test.yml where it stays silent"
        assert re.search(rf"^\| `{name}` \|", deploy, re.M), \
            f"{name}: no row in docs/deploy.md's table of alerts"
        names_used, funcs, labels = parse(r["expr"])
        assert names_used, name
        assert funcs <= FUNCTIONS | {"hour"}, f"{name}: {funcs - FUNCTIONS}"
        allowed = {"instance", "job"}
        for n in names_used:
            if n == "up":
                continue
            allowed |= docs[base_metric(n, docs)][1]
        assert labels <= allowed, f"{name}: labels {labels - allowed}"
    # the metrics added for the rules are documented
    for m in ("netwall_intake_oldest_undelivered_seconds",
              "netwall_intake_last_received_timestamp_seconds"):
        assert docs[m][0] == "gauge", m


def test_alertmanager_example_routes_every_severity():
    """docs/deploy.md's alertmanager.yml: every receiver a route names exists, and both
    severities the rules use reach a receiver."""
    block = re.search(r"```yaml\n# alertmanager.yml\n(.*?)```", DEPLOY_DOC.read_text(), re.S)
    assert block, "docs/deploy.md has no alertmanager.yml block"
    cfg = yaml.safe_load(block.group(1))
    receivers = {r["name"] for r in cfg["receivers"]}
    route = cfg["route"]
    assert route["receiver"] in receivers
    matched = set()
    for sub in route.get("routes", []):
        assert sub["receiver"] in receivers, sub
        for m in sub.get("matchers", []):
            got = re.fullmatch(r'severity\s*=\s*"?(\w+)"?', m)
            if got:
                matched.add(got.group(1))
    assert {"critical"} <= matched, matched
    block = re.search(r"```yaml\n# prometheus.yml\n(.*?)```", DEPLOY_DOC.read_text(), re.S)
    assert block, "docs/deploy.md has no prometheus.yml block"
    prom = yaml.safe_load(block.group(1))
    assert any("alerts.yml" in f for f in prom["rule_files"])
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_oldest_undelivered_and_last_received_metrics(intake, emar, postgres, kind):
    """The age of the oldest message waiting for delivery grows while the EMAR refuses it
    and is 0 once it is delivered; the time of the last message is the start's until one
    comes, then that message's. On both stores."""
    store = pg_url(postgres()) if kind == "postgresql" else None
    api = emar(mode="503")
    before = time.time()
    it = intake(store=store, emar=api, deliver={"max_attempts": "1000"})
    start = it.metric("netwall_intake_last_received_timestamp_seconds")
    assert int(before) - 1 <= start <= time.time()
    assert it.metric("netwall_intake_oldest_undelivered_seconds") == 0

    sent = time.time()
    with it.client() as c:
        assert ack_code(c.call(msg("OLD-1"))) == "AA"
    last = it.metric("netwall_intake_last_received_timestamp_seconds")
    assert int(sent) <= last <= time.time()
    wait_until(lambda: api.stats()["by_status"].get("503", 0) >= 1, 10, "a refused attempt")
    age = it.admin.wait_metric("netwall_intake_oldest_undelivered_seconds",
                               lambda v: v >= 2, timeout=15)
    assert age <= time.time() - sent + 1

    api.control("ok")
    api.wait_deliveries(1, timeout=20)
    it.admin.wait_metric("netwall_intake_oldest_undelivered_seconds", lambda v: v == 0,
                         timeout=10)
    assert it.metric("netwall_intake_queue_depth") == 0


# ---------------------------------------------------------------- a real Prometheus

def prom_get(port, path, **params):
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


def start_prometheus(procs, tmp_path, targets):
    """Prometheus scraping targets every second and evaluating alerts.yml every second;
    returns its port once the rules are loaded."""
    require("prometheus")
    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "rule_files": [str(RULES)],
           "scrape_configs": [{"job_name": "netwall",
                               "static_configs": [{"targets": targets}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    procs.start("prometheus", ["prometheus", "--config.file", tmp_path / "prometheus.yml",
                               "--storage.tsdb.path", tmp_path / "tsdb",
                               "--web.listen-address", f"127.0.0.1:{port}",
                               "--log.level=warn"])
    wait_until(lambda: prom_get(port, "/api/v1/rules")["groups"], 20,
               "Prometheus to load alerts.yml", interval=0.3)
    return port


def rules_evaluated_without_errors(port):
    """Every rule evaluated at least once, none with an error: the rules, or None."""
    rules = [r for g in prom_get(port, "/api/v1/rules")["groups"] for r in g["rules"]]
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] == "err"]
    assert not bad, bad
    if all(r["health"] == "ok" for r in rules):
        return rules
    return None


def firing(port, name):
    return [a for a in prom_get(port, "/api/v1/alerts")["alerts"]
            if a["labels"]["alertname"] == name and a["state"] == "firing"]


def test_a_dead_letter_raises_the_alert_and_its_replay_clears_it(intake, emar, procs,
                                                                 tmp_path):
    api = emar()
    api.control("422", count=1)
    it = intake(emar=api)
    target = f"127.0.0.1:{it.admin.port}"
    pport = start_prometheus(procs, tmp_path, [target])
    wait_until(lambda: rules_evaluated_without_errors(pport), 20,
               "every rule evaluated against the intake's series", interval=0.3)
    assert prom_get(pport, "/api/v1/alerts")["alerts"] == []

    with it.client() as c:
        assert ack_code(c.call(msg("DEAD-1"))) == "AA"
    it.proc.wait_event("delivery_dead")
    (alert,) = wait_until(lambda: firing(pport, "NetwallIntakeDeadLetters"), 30,
                          "NetwallIntakeDeadLetters to fire", interval=0.3)
    assert alert["labels"]["instance"] == target
    assert alert["labels"]["severity"] == "critical"
    assert float(alert["value"]) == 1
    assert "1 dead-lettered" in alert["annotations"]["summary"]

    assert it.messages("replay", "--dead") == {"replayed": 1}
    api.wait_deliveries(1)
    wait_until(lambda: not firing(pport, "NetwallIntakeDeadLetters"), 30,
               "NetwallIntakeDeadLetters to clear after the replay", interval=0.3)
    assert rules_evaluated_without_errors(pport)
