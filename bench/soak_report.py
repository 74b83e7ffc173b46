#!/usr/bin/env python3
"""The report of bench/soak.sh: reads the run directory, prints a Markdown report on stdout
and exits 1 if a rule is broken (the rules are at the top of bench/soak.sh), else 0.

    soak_report.py --dir RUN_DIR --duration S --seed N --rate R --date TEXT --netwall TEXT
                   --command TEXT --restarts 0|1 --t-end EPOCH [--record RESULTS.md]

Reads: log/mllp.log (soak_mllp's summary line), acked.txt, intake.db, emar.jsonl, chat.json,
tcp.json, restarts.csv, samples.csv, notes.txt, final_stops.csv, t0 and the daemons' logs
log/NAME-LIFETIME.log.
"""
import argparse
import csv
import json
import os
import re
import sqlite3
import statistics
import sys

RSS_REL, RSS_ABS_KIB = 0.10, 2048      # RSS may grow by max(10 %, 2 MiB)
FD_REL, FD_ABS = 0.10, 4               # fds by max(10 %, 4)
MIN_SAMPLES = 8                        # a lifetime shorter than this is not judged
WINDOW_BEFORE, WINDOW_AFTER = 1.0, 10.0  # a failure this close to a restart is "during" it
FIXED = ("intake", "chat", "emar")
WALL = ("gateway", "agent1", "agent2")


def kv(line):
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S+)", line))


def fmt_int(v):
    return "{:,}".format(v) if isinstance(v, int) else str(v)


def mib(kib):
    return "%.1f" % (kib / 1024.0)


def flat(values, rel, absolute):
    """(verdict or None, second-quarter median, last-quarter median) over a series."""
    n = len(values)
    if n < MIN_SAMPLES:
        return None, None, None
    q2 = values[n // 4:n // 2]
    q4 = values[(3 * n) // 4:]
    m2, m4 = statistics.median(q2), statistics.median(q4)
    return m4 <= m2 + max(rel * m2, absolute), m2, m4


def main():
    ap = argparse.ArgumentParser()
    for k in ("dir", "date", "netwall", "command"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--seed", required=True)
    ap.add_argument("--rate", required=True)
    ap.add_argument("--mllp-conns", required=True)
    ap.add_argument("--restarts", type=int, default=1)
    ap.add_argument("--t-end", type=float, required=True)
    ap.add_argument("--record", default="", help="results file to add the report to")
    a = ap.parse_args()
    d = a.dir
    p = lambda *x: os.path.join(d, *x)  # noqa: E731
    out = []
    w = out.append
    fails = []
    t0 = float(open(p("t0")).read().strip())

    # ------------------------------------------------------------ restarts
    restarts = []
    if os.path.exists(p("restarts.csv")):
        with open(p("restarts.csv")) as f:
            restarts = list(csv.DictReader(f))
    windows = [(float(r["epoch_kill"]) - WINDOW_BEFORE, float(r["epoch_up"]) + WINDOW_AFTER)
               for r in restarts]

    def during_restart(t):
        return any(lo <= t <= hi for lo, hi in windows)

    # ------------------------------------------------------------ MLLP
    mllp = {}
    if os.path.exists(p("log", "mllp.log")):
        for line in open(p("log", "mllp.log"), errors="replace"):
            if line.startswith("sent="):
                mllp = kv(line)
    acked = set()
    if os.path.exists(p("acked.txt")):
        acked = {x.strip() for x in open(p("acked.txt")) if x.strip()}
    stored, states = set(), {}
    try:
        db = sqlite3.connect("file:%s?mode=ro" % p("intake.db"), uri=True)
        for cid, st in db.execute("SELECT control_id, state FROM messages WHERE sending_app = 'SOAK'"):
            stored.add(cid)
            states[st] = states.get(st, 0) + 1
        db.close()
    except sqlite3.Error as e:
        fails.append("cannot read the intake's store: %s" % e)
    delivered, deliveries = set(), 0
    if os.path.exists(p("emar.jsonl")):
        for line in open(p("emar.jsonl"), errors="replace"):
            try:
                cid = json.loads(line).get("control_id")
            except ValueError:
                continue
            deliveries += 1
            delivered.add(cid)
    not_stored = acked - stored
    not_delivered = acked - delivered
    lost = acked - (stored & delivered)
    stored_unacked = stored - acked
    if not mllp:
        fails.append("the MLLP sender printed no summary")
    if lost:
        fails.append("MLLP: %d acknowledged message(s) lost (%d not stored, %d not delivered), e.g. %s"
                     % (len(lost), len(not_stored), len(not_delivered), ", ".join(sorted(lost)[:5])))

    # ------------------------------------------------------------ chat, tcp
    chat = json.load(open(p("chat.json"))) if os.path.exists(p("chat.json")) else {}
    tcp = json.load(open(p("tcp.json"))) if os.path.exists(p("tcp.json")) else {}
    if not chat:
        fails.append("the chat clients wrote no summary")
    elif chat.get("missing"):
        fails.append("chat: %d line(s) missing that both ends were connected for, first: %s"
                     % (chat["missing"], chat.get("missing_first", [])[:3]))
    if not tcp:
        fails.append("the HTTP/echo clients wrote no summary")
    corrupt = sum(v.get("corrupt", 0) for v in tcp.values())
    if corrupt:
        fails.append("%d HTTP body or echo differed from what was sent" % corrupt)

    # ------------------------------------------------------------ resources
    rows = []
    if os.path.exists(p("samples.csv")):
        with open(p("samples.csv")) as f:
            rows = [r for r in csv.DictReader(f) if r.get("rss_kib")]
    # (daemon, lifetime) -> [(elapsed, rss, fds, fds not held by open connections)]: the wall's
    # streams, the intake's MLLP connections and the chat's clients each hold one fd
    series = {}
    for r in rows:
        fds = int(r["fds"])
        ex = r.get("extra") or ""
        base = fds - int(float(ex)) if re.fullmatch(r"[0-9.]+", ex) else fds
        series.setdefault((r["daemon"], int(r["lifetime"])), []).append(
            (float(r["elapsed_s"]), int(r["rss_kib"]), fds, base))
    res_lines, verdict_lines = [], []
    for name in WALL + FIXED:
        lives = sorted(k for k in series if k[0] == name)
        if not lives:
            continue
        allv = [s for k in lives for s in series[k]]
        traffic = [s for s in allv if s[0] <= a.duration]
        first, last = allv[0], allv[-1]
        end_t = traffic[-1] if traffic else last
        judged = []
        for k in lives:
            ser = [s for s in series[k] if s[0] <= a.duration] if name in FIXED else series[k]
            rv, r2, r4 = flat([s[1] for s in ser], RSS_REL, RSS_ABS_KIB)
            fv, f2, f4 = flat([s[3] for s in ser], FD_REL, FD_ABS)
            if rv is None:
                continue
            tag = "" if name in FIXED else " lifetime %d (%d samples)" % (k[1], len(ser))
            judged.append((rv and fv, "%s%s: RSS %s -> %s MiB, fds beyond open connections %g -> %g (2nd -> 4th quarter medians)"
                           % (name, tag, mib(r2), mib(r4), f2, f4)))
            if not rv:
                fails.append("%s%s: RSS grew, %s -> %s MiB (second- to last-quarter median)"
                             % (name, tag, mib(r2), mib(r4)))
            if not fv:
                fails.append("%s%s: open fds beyond its open connections grew, %g -> %g (second- to last-quarter median)"
                             % (name, tag, f2, f4))
        if judged:
            v = "flat" if all(j[0] for j in judged) else "GROWS"
            v += " (%d of %d lifetimes judged)" % (len(judged), len(lives)) if name in WALL else ""
        else:
            v = "not judged (no lifetime of %d samples)" % MIN_SAMPLES
        verdict_lines += [j[1] for j in judged]
        res_lines.append("| %s | %d | %s / %s / %s / %s | %d / %d / %d / %d | %d / %d / %d / %d | %s |" % (
            name, len(lives), mib(first[1]), mib(end_t[1]), mib(last[1]), mib(max(s[1] for s in allv)),
            first[2], end_t[2], last[2], max(s[2] for s in allv),
            first[3], end_t[3], last[3], max(s[3] for s in allv), v))

    # ------------------------------------------------------------ notes, exits, logs
    notes = [x.strip() for x in open(p("notes.txt")) if x.strip()] if os.path.exists(p("notes.txt")) else []
    for n in notes:
        if n.startswith("UNEXPECTED EXIT") or "did not exit cleanly" in n or "was not back" in n \
                or "at the end: SIGTERM" in n or "did not finish" in n or "delivery queue" in n:
            fails.append(n[:400])
    logcounts = {}
    for fn in sorted(os.listdir(p("log"))):
        m = re.match(r"(gateway|agent\d|intake|chat)-\d+\.log$", fn)
        if not m:
            continue
        for line in open(p("log", fn), errors="replace"):
            lv = re.search(r"\blevel=(\w+)", line)
            if lv and lv.group(1) in ("warn", "error"):
                ev = re.search(r"\bevent=(\S+)", line)
                key = (m.group(1), lv.group(1), ev.group(1) if ev else "?")
                logcounts[key] = logcounts.get(key, 0) + 1
            elif not lv and line.strip():
                key = (m.group(1), "other", line.strip()[:60])
                logcounts[key] = logcounts.get(key, 0) + 1

    # ------------------------------------------------------------ report
    by = {}
    for r in restarts:
        by.setdefault(r["daemon"], {}).setdefault(r["signal"], 0)
        by[r["daemon"]][r["signal"]] += 1
    ups = [float(r["up_s"]) for r in restarts]
    term_stops = [float(r["stop_s"]) for r in restarts if r["signal"] == "TERM"]
    cpus = os.cpu_count()
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)

    w("## %s — soak (bench/soak.sh), %d s" % (a.date, a.duration))
    w("")
    w("- Command: `%s`; netwall %s." % (a.command, a.netwall))
    w("- Machine: %d CPUs (%s), %.1f GiB RAM, kernel %s; everything (daemons, load, sampler) on it."
      % (cpus, model, mem / 1048576.0, os.uname().release))
    w("- Layout: gateway -> 2 agents (2 tunnels each, every service on both) -> intake (PROXY v2, "
      "SQLite) -> stand-in EMAR API; chat (TLS end to end); a small HTTP server; a TCP echo server. "
      "drain_timeout 5 s on the wall.")
    w("- Traffic: MLLP %s msg/s on %s connections (bench/soak_mllp.c: unique control IDs, every "
      "message resent until AA); %s chat clients, a line a second each; HTTP GET 256 KiB on a new "
      "connection, GET on a kept-alive one and an echo of 1 B..64 KiB, each every 0.5 s."
      % (a.rate, a.mllp_conns, chat.get("clients", "?")))
    if a.restarts and not restarts:
        w("- Restarts (seed %s): none happened." % a.seed)
    elif a.restarts:
        w("- Restarts (seed %s): %d — %s. Back up (every tunnel up again) after median %.1f s, max "
          "%.1f s from the signal; SIGTERM exits took median %.1f s." % (
              a.seed, len(restarts),
              ", ".join("%s %s" % (n, " + ".join("%d SIG%s" % (c, s) for s, c in sorted(v.items())))
                        for n, v in sorted(by.items())) or "none",
              statistics.median(ups) if ups else 0, max(ups) if ups else 0,
              statistics.median(term_stops) if term_stops else 0))
        w("- Restart log (s into the run, daemon, signal, exit status, seconds until back up): " + "; ".join(
            "%s %s %s %s %s" % (r["elapsed_s"], r["daemon"], r["signal"], r["exit"], r["up_s"]) for r in restarts) + ".")
    else:
        w("- No restarts (--no-restarts): a baseline.")
    w("")
    w("| MLLP | |")
    w("|---|---:|")
    w("| sent (distinct messages) | %s |" % fmt_int(int(mllp.get("sent", 0))))
    w("| acknowledged AA | %s |" % fmt_int(len(acked)))
    w("| stored (intake SQLite) | %s (%s) |" % (fmt_int(len(stored)), ", ".join(
        "%s %s" % (k, fmt_int(v)) for k, v in sorted(states.items()))))
    w("| delivered (stand-in API, distinct control IDs) | %s (%s POSTs) |" % (
        fmt_int(len(delivered)), fmt_int(deliveries)))
    w("| **lost** (acknowledged, not stored or not delivered) | **%d** |" % len(lost))
    w("| stored but never acknowledged to the sender | %d |" % len(stored_unacked))
    w("| sent, never acknowledged (given up at the end) | %s |" % mllp.get("unacked", "?"))
    w("| transmissions / resends / reconnects | %s / %s / %s |" % (
        fmt_int(int(mllp.get("attempts", 0))), fmt_int(int(mllp.get("resends", 0))),
        fmt_int(int(mllp.get("reconnects", 0)))))
    w("| failures: refused connects / closed / ACK timeouts / AE / bad ACKs | %s / %s / %s / %s / %s |" % (
        mllp.get("connect_failures", "?"), mllp.get("closed", "?"), mllp.get("timeouts", "?"),
        mllp.get("ae", "?"), mllp.get("bad_acks", "?")))
    w("| time to AA incl. resends, p50 / p99 / max | %s / %s / %s ms |" % (
        mllp.get("p50_ms", "?"), mllp.get("p99_ms", "?"), mllp.get("max_ms", "?")))
    w("| schedule skipped while the wall was down | %s s |" % mllp.get("behind_s", "?"))
    w("")
    if chat:
        w("| chat | |")
        w("|---|---:|")
        w("| lines sent | %s |" % fmt_int(chat["sent"]))
        w("| in doubt (the sender's connection was cut within %g s) | %s |" % (chat["grace"], fmt_int(chat["in_doubt"])))
        w("| deliveries expected (both ends connected) / received | %s / %s |" % (
            fmt_int(chat["expected"]), fmt_int(chat["received"])))
        w("| **missing** | **%d** |" % chat["missing"])
        w("| duplicates / sessions / failed connects | %d / %d / %d |" % (
            chat["duplicates"], chat["sessions"], chat["connect_failures"]))
        w("")
    if tcp:
        w("| HTTP / echo | ok | failed during a restart | failed otherwise | corrupt | bytes |")
        w("|---|---:|---:|---:|---:|---:|")
        for k, v in tcp.items():
            ep = v.get("failure_epochs", [])
            dur = sum(1 for t in ep if during_restart(t))
            w("| %s | %s | %d | %d | %d | %s |" % (k, fmt_int(v["ok"]), dur, len(ep) - dur - v["corrupt"],
                                                  v["corrupt"], fmt_int(v["bytes"])))
        w("")
        outside = sum(len(v.get("failure_epochs", [])) - sum(1 for t in v.get("failure_epochs", []) if during_restart(t))
                      for v in tcp.values())
    w("Resources, sampled every 10 s (RSS MiB and open fds: first sample / end of traffic / at rest "
      "after the queue emptied / max):")
    w("")
    w("| daemon | processes | RSS MiB | fds | fds beyond open connections | verdict |")
    w("|---|---:|---|---|---|---|")
    out.extend(res_lines)
    w("")
    if verdict_lines:
        w("<details><summary>Per process lifetime</summary>")
        w("")
        for v in verdict_lines:
            w("- " + v)
        w("")
        w("</details>")
        w("")
    # a few samples over time
    times = sorted({round(float(r["elapsed_s"]) / 10) * 10 for r in rows})
    if times:
        step = max(1, len(times) // 8)
        pick = times[::step]
        if times[-1] not in pick:
            pick.append(times[-1])
        names = [n for n in WALL + FIXED if any(k[0] == n for k in series)]
        w("Samples over time (RSS MiB / fds; the gateway's and agents' process lifetime in brackets):")
        w("")
        w("| t (s) | " + " | ".join(names) + " |")
        w("|---:|" + "---|" * len(names))
        at = {}
        for r in rows:
            at[(round(float(r["elapsed_s"]) / 10) * 10, r["daemon"])] = r
        for t in pick:
            cells = []
            for n in names:
                r = at.get((t, n))
                if r is None:
                    cells.append("—")
                else:
                    life = " [%s]" % r["lifetime"] if n in WALL else ""
                    cells.append("%s / %s%s" % (mib(int(r["rss_kib"])), r["fds"], life))
            w("| %d | %s |" % (t, " | ".join(cells)))
        w("")
    if logcounts:
        w("Warnings and errors in the daemons' logs: " + "; ".join(
            "%s %s %s x%d" % (k[0], k[1], k[2], v) for k, v in sorted(logcounts.items())) + ".")
        w("")
    if tcp and outside:
        w("HTTP/echo failures outside a restart window (signal - %gs .. back up + %gs): %d; see "
          "tcp_events.log." % (WINDOW_BEFORE, WINDOW_AFTER, outside))
        w("")
    other_notes = [n for n in notes if n[:400] not in fails]
    if other_notes:
        w("Notes: " + " ".join(n[:400] for n in other_notes))
        w("")
    w("Verdicts (rules at the top of bench/soak.sh): lost %d (must be 0) — %s; memory and fds — %s; "
      "chat missing %s — %s; corrupt %d; daemons %s." % (
          len(lost), "met" if not lost else "FAILED",
          "flat" if not any("grew" in f for f in fails) else "GREW",
          chat.get("missing", "?"), "met" if chat and not chat.get("missing") else "FAILED",
          corrupt, "no unexpected exit, clean SIGTERM exits"
          if not any(n.startswith("UNEXPECTED") or "SIGTERM" in n for n in notes) else "see notes"))
    w("")
    w("**%s**" % ("PASS" if not fails else "FAIL: " + "; ".join(fails)))
    text = "\n".join(out)
    print(text)
    if a.record:
        record(a.record, text)
    return 1 if fails else 0


def record(path, text):
    """Puts the report right below the marker of the results file, above the older runs."""
    marker = "<!-- runs below: newest first -->"
    lines = open(path, encoding="utf-8").read().split("\n")
    if marker not in lines:
        print("soak_report: no marker in %s; not recorded" % path, file=sys.stderr)
        return
    i = lines.index(marker) + 1
    rest = lines[i:]
    while rest and rest[0] == "":
        rest.pop(0)
    lines = lines[:i] + [""] + text.rstrip("\n").split("\n") + [""] + rest
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)
    print("soak_report: added to %s" % path, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
