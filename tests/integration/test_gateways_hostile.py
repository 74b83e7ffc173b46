"""A gateway name with several addresses, used carelessly: more addresses than the agent
keeps, and a reload after the resolver answered in another order (DNS round robin rotates
its answers)."""

import signal
import subprocess

from conftest import REPO, connect, echo_works, roundtrip, svc
from test_gateways import private_hosts


def test_a_name_with_more_addresses_than_the_agent_keeps_is_an_error(wall, echo):
    """70 addresses for one name: the agent keeps 64 gateways. The 6 others would never
    get its tunnels (their visitors find no agent), so the config should be refused, not
    be 'ok (agent: 64 gateways)'."""
    gw = wall.gateway({"e": svc()}, start=False)
    hosts = "127.0.0.1 localhost\n" + "".join(f"127.0.1.{i} wall.test\n" for i in range(1, 71))
    prefix = private_hosts(wall, hosts)
    ag = wall.agent("site-a", gw, {"e": echo().addr}, prefix=prefix, start=False,
                    gateway_addrs=["wall.test:25990"])
    r = subprocess.run([*prefix, str(REPO / "build" / "netwall"), "check", str(ag.config_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, f"70 addresses, 64 kept, and check says: {r.stdout}{r.stderr}"


def test_a_reload_after_the_resolver_rotated_its_answer_keeps_the_tunnels(wall, echo):
    """The same two addresses in another order are the same gateways: a reload (here one
    that changes nothing) should keep the tunnels and the visitors' streams on them."""
    import socket
    from conftest import free_port
    e = echo()
    port = free_port()
    # .2 and .3: as far from the agent's source (.1) by prefix, so the resolver keeps the
    # order it was given (RFC 6724 rule 9 would otherwise sort .1 first every time)
    a = wall.gateway({"e": svc()}, name="gw-a", tunnel_host="127.0.0.2", tunnel_port=port)
    b = wall.gateway({"e": svc()}, name="gw-b", tunnel_host="127.0.0.3", tunnel_port=port)
    prefix = private_hosts(wall, "127.0.0.1 localhost\n127.0.0.2 wall.test\n"
                                 "127.0.0.3 wall.test\n")
    ag = wall.agent("site-a", [a, b], {"e": e.addr}, prefix=prefix,
                    gateway_addrs=[f"wall.test:{port}"])
    a.wait_tunnels(2)
    b.wait_tunnels(2)
    held = connect(a.port("e"))
    roundtrip(held)
    # the resolver now answers with the other address first (the bind-mounted file is
    # rewritten in place, so the agent's mount namespace sees it)
    (wall.dir / "hosts").write_text("127.0.0.1 localhost\n127.0.0.3 wall.test\n"
                                    "127.0.0.2 wall.test\n")
    mark = ag.proc.mark()
    ag.proc.signal(signal.SIGHUP)
    ag.proc.wait_event("reloaded", 5, since=mark)
    kept = ag.proc.events("reloaded", since=mark)[-1].get("tunnels_kept")
    try:
        held.settimeout(5)
        roundtrip(held)
        alive = True
    except (OSError, AssertionError, socket.timeout):
        alive = False
    held.close()
    assert kept == "yes" and alive, \
        f"same gateways in another order: tunnels_kept={kept}, held stream alive={alive}"
    assert echo_works(a.port("e"))


def test_a_dual_stack_name_for_one_gateway_does_not_flap(wall, echo):
    """One gateway with an IPv4 and an IPv6 address under one name (an A and an AAAA
    record: the common case). The agent now dials it twice, once per address, with the same
    identity, instance and slots; the gateway replaces a tunnel by (identity, slot), so the
    two dialers should not keep replacing each other's tunnels."""
    import pytest
    from conftest import _ipv6_available, free_port
    if not _ipv6_available():
        pytest.skip("no IPv6 loopback here")
    e = echo()
    port = free_port()
    gw = wall.gateway({"e": svc()}, tunnel_port=port, start=False)
    text = gw.config_path.read_text()
    gw.config_path.write_text(text.replace(f"listen = 127.0.0.1:{port}\n",
                                           f"listen = 127.0.0.1:{port}\nlisten = [::1]:{port}\n", 1))
    gw.start()
    prefix = private_hosts(wall, "127.0.0.1 localhost\n127.0.0.1 wall.test\n::1 wall.test\n")
    ag = wall.agent("site-a", gw, {"e": e.addr}, prefix=prefix,
                    gateway_addrs=[f"wall.test:{port}"])
    # two addresses, two tunnels each: four at once, which a flapping agent never has (each
    # tunnel that comes up closes its twin of the same slot)
    gw.wait_tunnels(4)
    flapped = len(gw.proc.events("tunnel_down", reason="replaced"))
    assert flapped == 0, f"the gateway replaced the agent's tunnels {flapped} times"
