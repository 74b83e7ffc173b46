"""A thousand concurrent visitors: all served, counted, and released."""

import struct

import pytest

from conftest import SANITIZED, connect, pss_kib, raise_nofile, recv_exact, roundtrip, wait_until

N = 1000


def test_thousand_concurrent_visitors(wall, echo):
    limit = raise_nofile(4 * N + 1000)
    if limit < 2 * N + 200:
        pytest.skip(f"RLIMIT_NOFILE is {limit}, need {2 * N + 200} descriptors")
    target = echo()
    # every visitor here comes from 127.0.0.1: lift the per-source share
    gw, ag = wall.stack(target.addr, "echo", svc_opts={"max_per_source": "10000"})
    port = gw.port("echo")

    # Warm up allocator and code paths, then take the baseline.
    warm = [connect(port) for _ in range(20)]
    for s in warm:
        roundtrip(s)
        s.close()
    gw.admin.wait_metric("netwall_streams_open", lambda v: v == 0, 10)
    ag.admin.wait_metric("netwall_streams_open", lambda v: v == 0, 10)
    base = {"gateway": pss_kib(gw.proc.pid), "agent": pss_kib(ag.proc.pid)}

    socks = []
    try:
        for _ in range(N):
            socks.append(connect(port, timeout=15))
        # Each connection carries its own payload both ways.
        for i, s in enumerate(socks):
            s.sendall(struct.pack("!I", i))
        for i, s in enumerate(socks):
            assert recv_exact(s, 4, timeout=15) == struct.pack("!I", i), f"connection {i}"

        gw.admin.wait_metric("netwall_streams_open", lambda v: v == N, 10)
        ag.admin.wait_metric("netwall_streams_open", lambda v: v == N, 10)
        loaded = {"gateway": pss_kib(gw.proc.pid), "agent": pss_kib(ag.proc.pid)}
        # A second exchange on every connection after all are open.
        for i, s in enumerate(socks):
            s.sendall(b"%d;" % i)
        for i, s in enumerate(socks):
            want = b"%d;" % i
            assert recv_exact(s, len(want), timeout=15) == want, f"connection {i}, second exchange"
    finally:
        for s in socks:
            s.close()

    for role, kib in loaded.items():
        print(f"{role}: baseline PSS {base[role]} KiB, with {N} open {kib} KiB, "
              f"{(kib - base[role]) / N:.2f} KiB per connection")

    gw.admin.wait_metric("netwall_streams_open", lambda v: v == 0, 15)
    ag.admin.wait_metric("netwall_streams_open", lambda v: v == 0, 15)
    assert gw.metric("netwall_tunnels_up") == 2

    if SANITIZED:
        pytest.skip("NETWALL_SANITIZED=1: the sanitizer keeps freed memory, PSS is no leak signal")

    def back_to_baseline():
        now = {"gateway": pss_kib(gw.proc.pid), "agent": pss_kib(ag.proc.pid)}
        ok = all(now[r] <= base[r] + 4 * 1024 for r in now)   # within 4 MiB of the baseline
        return now if ok else None
    try:
        after = wait_until(back_to_baseline, 10, "PSS back near baseline", interval=0.5)
    except AssertionError:
        after = {"gateway": pss_kib(gw.proc.pid), "agent": pss_kib(ag.proc.pid)}
        raise AssertionError(f"PSS did not return near baseline after closing {N} connections: "
                             f"baseline {base} KiB, loaded {loaded} KiB, after {after} KiB") from None
    print(f"after close: {after} KiB")
