"""SIGHUP reloads without dropping streams; SIGTERM drains and exits 0."""

import signal
import time

from conftest import (closed_within, connect, echo_works, free_port, roundtrip, svc,
                      visitor_closed_within, wait_listen, wait_until)


def test_sighup_adds_service_without_dropping_open_stream(wall, echo):
    t1, t2 = echo(), echo()
    gw = wall.gateway({"one": svc()})
    ag = wall.agent("site-a", gw, {"one": t1.addr})
    gw.wait_tunnels(2)

    with connect(gw.port("one")) as held:
        roundtrip(held)
        gw_mark = gw.proc.mark()

        # The gateway exposes a second service...
        port2 = free_port()
        gw.services["two"] = svc(listen=f"127.0.0.1:{port2}")
        text = gw.config_path.read_text()
        gw.config_path.write_text(text + f"\n[service two]\nlisten = 127.0.0.1:{port2}\n"
                                         "agents = site-a\n")
        gw.proc.signal(signal.SIGHUP)
        wait_listen(port2, timeout=5)
        roundtrip(held)

        # ...and the agent learns where it goes.
        ag.config_path.write_text(ag.config_path.read_text() +
                                  f"\n[service two]\ntarget = {t2.addr}\n")
        ag.proc.signal(signal.SIGHUP)
        wait_until(lambda: echo_works(port2, timeout=2), 5, "service two to work after reload",
                   interval=0.2)
        roundtrip(held)

    assert gw.proc.events("tunnel_down", since=gw_mark) == []
    assert gw.proc.alive() and ag.proc.alive()
    assert echo_works(gw.port("one"))


def test_sighup_with_broken_config_keeps_running(wall, echo):
    """A reload that fails validation keeps the old config in force."""
    t1 = echo()
    gw, ag = wall.stack(t1.addr, "one")
    with connect(gw.port("one")) as held:
        roundtrip(held)
        good = gw.config_path.read_text()
        gw.config_path.write_text(good + "\n[service broken]\nlisten = 127.0.0.1:notaport\n")
        mark = gw.proc.mark()
        gw.proc.signal(signal.SIGHUP)
        wait_until(lambda: gw.proc.text(mark).strip(), 5, "the gateway to log the failed reload")
        assert gw.proc.alive()
        roundtrip(held)
    assert echo_works(gw.port("one"))


def test_sigterm_drains_then_exits_0(wall, echo):
    target = echo()
    drain = 3
    gw, ag = wall.stack(target.addr, "echo", gw_extra={"drain_timeout": str(drain)})
    port = gw.port("echo")

    with connect(port) as held:
        roundtrip(held)
        t0 = time.monotonic()
        gw.proc.signal(signal.SIGTERM)

        # New visitors are no longer taken...
        def refused():
            try:
                return visitor_closed_within(port, 1) is not None
            except ConnectionRefusedError:
                return True
        wait_until(refused, 2, "new connections to be refused after SIGTERM")
        # ...while the open stream still works during the drain.
        roundtrip(held)

        rc = gw.proc.wait_exit(drain + 3)
        took = time.monotonic() - t0
        assert rc is not None, f"gateway still running {took:.1f}s after SIGTERM (drain_timeout {drain})"
        assert rc == 0
        assert took < drain + 3
        assert closed_within(held, 2) is not None, "held stream not closed when the gateway exited"


def test_sigterm_exits_once_streams_finish(wall, echo):
    target = echo()
    gw, ag = wall.stack(target.addr, "echo", gw_extra={"drain_timeout": "30"})
    with connect(gw.port("echo")) as held:
        roundtrip(held)
        gw.proc.signal(signal.SIGTERM)
        time.sleep(0.3)
        assert gw.proc.alive(), "gateway exited while a stream was still open"
        roundtrip(held)
    rc = gw.proc.wait_exit(10)
    assert rc == 0, f"gateway did not exit 0 within 10 s of its last stream closing (rc {rc})"


def test_agent_sigterm_exits_0(wall, echo):
    target = echo()
    gw, ag = wall.stack(target.addr, "echo")
    ag.proc.signal(signal.SIGTERM)
    assert ag.proc.wait_exit(10) == 0
    gw.wait_tunnels(0, timeout=5)
