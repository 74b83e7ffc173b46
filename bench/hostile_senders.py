"""MLLP senders for bench/hostile.sh's intake section.

    hostile_senders.py partial PORT N   N connections, each starting a frame of just under
                                        1 MiB that never ends; pushes what the intake reads
                                        and holds on until stopped
    hostile_senders.py one PORT         one ordinary message; prints its MSA-1 and the
                                        seconds until the ACK came
"""
import socket
import sys
import time

HEAD = b"\x0bMSH|^~\\&|HOSTILE|SITE|EMAR|WARD|20261207120000||RDE^O11|H%d|P|2.5\r"
FILL = b"ZRX|" + b"x" * ((1 << 20) - 200) + b"\r"   # just under 1 MiB; no FS CR follows
ONE = (b"\x0bMSH|^~\\&|PHARM|SITE|EMAR|WARD|20261207120000||RDE^O11|NORMAL-1|P|2.5\r"
       b"PID|1||123^^^H^MR||DOE^JANE\r\x1c\r")


def partial(port, n):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        socks.append([s, memoryview((HEAD % i) + FILL)])
    print("connected", len(socks), flush=True)
    while True:   # until stopped (bench/hostile.sh's time limit ends us at the latest)
        for e in socks:
            if len(e[1]):
                try:
                    e[1] = e[1][e[0].send(e[1]):]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    e[1] = e[1][:0]
        time.sleep(0.05)


def one(port):
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(ONE)
    got = b""
    while b"\x1c\r" not in got:
        b = s.recv(65536)
        if not b:
            break
        got += b
    code = got.split(b"MSA|")[1][:2].decode() if b"MSA|" in got else "none"
    print("%s %.2f" % (code, time.monotonic() - t0))


if __name__ == "__main__":
    if sys.argv[1] == "partial":
        partial(int(sys.argv[2]), int(sys.argv[3]))
    else:
        one(int(sys.argv[2]))
