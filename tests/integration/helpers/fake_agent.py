"""A minimal hand-written netwall agent (TLS 1.3 client, HTTP/2 server side) for the CA tests:
answers the gateway's hello with chosen header values, and can hold its last handshake flight
(Certificate/CertificateVerify/Finished) until hold() returns. run() returns whether it
answered a hello (the gateway took the tunnel)."""
import socket, ssl, struct, time

def _str(b):
    assert len(b) < 127
    return bytes([len(b)]) + b

def _lit(name, value):
    return b"\x00" + _str(name) + _str(value)

def frame(typ, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([typ, flags]) + struct.pack(">I", sid) + payload

def run(port, crt, key, services=b"echo", instance=b"fake01", hold=None, seconds=3, log=print):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(crt), str(key))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="gateway.internal")
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if out.pending:
                s.sendall(out.read())
            inc.write(s.recv(65536))
    # the client's last flight is in out: hold it
    if hold is not None:
        hold()
    s.sendall(out.read())
    def send(b):
        tls.write(b)
        s.sendall(out.read())
    send(frame(4, 0, 0))  # our SETTINGS
    buf = b""
    end = time.monotonic() + seconds
    answered = False
    s.settimeout(0.2)
    while time.monotonic() < end:
        try:
            data = s.recv(65536)
            if not data:
                log("fake agent: gateway closed")
                return answered
            inc.write(data)
        except socket.timeout:
            pass
        except ConnectionResetError:
            log("fake agent: reset"); return answered
        while True:
            try:
                buf += tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError as e:
                log("fake agent: tls", e); return answered
        if buf.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):
            buf = buf[24:]
        while len(buf) >= 9:
            ln = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + ln:
                break
            typ, flags, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff
            pl = buf[9:9 + ln]
            buf = buf[9 + ln:]
            if typ == 4 and not flags & 1:
                send(frame(4, 1, 0))
            elif typ == 6 and not flags & 1:
                send(frame(6, 1, 0, pl))
            elif typ == 1 and not answered:
                block = b"\x88" + _lit(b"x-netwall-instance", instance) + \
                        _lit(b"x-netwall-slot", b"0") + _lit(b"x-netwall-services", services)
                send(frame(1, 4, sid, block))
                answered = True
                log(f"fake agent: answered hello on stream {sid}")
    return answered
