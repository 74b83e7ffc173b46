"""A tunnel target for the memory tests: hostile_target.py HOST PORT.

Each connection starts with one command line:
    PUSH n   write n bytes of PATTERN (a 1 MiB block repeated), then shut down writing;
             what the client sends after the line is never read
    SINK     read nothing, ever (the client's bytes pile up behind us)
    ECHO     echo every byte back until the client closes
One asyncio loop, so a thousand connections cost little. Prints "ready" once listening.
"""
import asyncio
import hashlib
import random
import sys

BLOCK = random.Random(20261207).randbytes(1 << 20)
CHUNK = 65536


def pattern_sha256(n):
    """SHA-256 of the first n bytes PUSH n sends."""
    h = hashlib.sha256()
    while n > 0:
        k = min(n, len(BLOCK))
        h.update(BLOCK[:k])
        n -= k
    return h.hexdigest()


async def push(writer, n):
    view = memoryview(BLOCK)
    off = 0
    while n > 0:
        k = min(n, CHUNK, len(BLOCK) - off)
        writer.write(view[off:off + k])
        await writer.drain()
        off = (off + k) % len(BLOCK)
        n -= k
    writer.write_eof()


async def handle(reader, writer):
    try:
        line = await reader.readline()
        cmd = line.split()
        if cmd[:1] == [b"PUSH"] and len(cmd) == 2:
            await push(writer, int(cmd[1]))
            await asyncio.Event().wait()   # hold the connection; read nothing
        elif cmd == [b"SINK"]:
            await asyncio.Event().wait()
        elif cmd == [b"ECHO"]:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(host, port):
    server = await asyncio.start_server(handle, host, port, backlog=4096, reuse_address=True,
                                        limit=1 << 16)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
