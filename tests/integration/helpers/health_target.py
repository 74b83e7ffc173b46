"""An HTTP target that answers health checks badly on purpose:
health_target.py HOST PORT MODE [CERT KEY] (with CERT and KEY: over TLS).

MODE is one of
  status:NNN  every request gets status NNN with a short body naming the port
  hold        accepts, reads, never answers
  endless     "HTTP/1.1 200 OK" and headers, then a body that never ends
  noline      an answer without a line end, never ending
  flap        200 and 500 in turn, one request after another

Prints "ready" once listening.
"""
import asyncio
import ssl
import sys

CHUNK = b"x" * 65536


FLAP = [0]


async def handle(reader, writer, mode, port):
    try:
        await reader.readuntil(b"\r\n\r\n")
        if mode == "flap":
            FLAP[0] += 1
            mode = "status:200" if FLAP[0] % 2 else "status:500"
        if mode.startswith("status:"):
            code = int(mode.split(":", 1)[1])
            body = f"port {port} status {code}\n".encode()
            writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        elif mode == "hold":
            await reader.read()  # until the peer gives up
        elif mode == "endless":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            while True:
                writer.write(CHUNK)
                await writer.drain()
        elif mode == "noline":
            writer.write(b"HTTP/1.1 200 ")
            while True:
                writer.write(CHUNK)
                await writer.drain()
    except (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main(host, port, mode, tls=None):
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
    server = await asyncio.start_server(lambda r, w: handle(r, w, mode, port), host, port,
                                        reuse_address=True, ssl=ctx)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:6] or None))
