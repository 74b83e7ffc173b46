"""netwall chat serve against hostile clients: a client whose own send queue overflows in
the middle of one of its commands (the server must not free what the command still holds:
the client is marked and reaped when control is back in the loop), password guessing that
must not block the loop nor tell accounts apart, peer text kept out of the logs, and the
process-wide memory budget."""

import re
import socket

import pytest

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
