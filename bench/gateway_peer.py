#!/usr/bin/env python3
"""Both ends of the gateway benchmark (run inside namespaces by bench/gateway.sh).

server: a TLS server (TLS 1.3, the given cert/key). For each connection: handshake, then read one request line,
        "BULK <bytes>" (send that many bytes) or "PING" (answer one line), then close.
client: through the proxy with an SNI name:
        bulk  - one TLS connection that downloads <bytes>; prints MB/s
        rate  - <threads> threads doing full connections (TCP + TLS handshake + PING) for <seconds>; prints conn/s
Bounded in count and time by its arguments; talks only to the addresses it is given (namespace addresses)."""
import socket, ssl, sys, threading, time

def server(host, port, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port))); ls.listen(1024)
    chunk = b"\0" * (256 * 1024)
    def handle(c):
        try:
            with ctx.wrap_socket(c, server_side=True) as t:
                line = t.recv(64).decode().split()
                if line and line[0] == "BULK":
                    left = int(line[1])
                    while left > 0:
                        n = min(left, len(chunk)); t.sendall(chunk[:n]); left -= n
                else:
                    t.sendall(b"PONG\n")
        except Exception:
            pass
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()

def ctx_client():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx

def bulk(host, port, sni, size):
    ctx = ctx_client(); size = int(size)
    s = socket.create_connection((host, int(port)), timeout=60)
    t = ctx.wrap_socket(s, server_hostname=sni)
    start = time.perf_counter(); t.sendall(f"BULK {size}\n".encode()); got = 0
    buf = bytearray(1024 * 1024)
    while got < size:
        n = t.recv_into(buf)
        if n == 0: break
        got += n
    el = time.perf_counter() - start
    t.close()
    if got != size: sys.exit(f"short read {got}/{size}")
    print(f"{got / el / 1e6:.1f}")

def rate(host, port, sni, threads, seconds):
    ctx = ctx_client(); done = [0] * int(threads); errors = [0] * int(threads)
    until = time.perf_counter() + float(seconds)
    def work(i):
        while time.perf_counter() < until:
            try:
                with socket.create_connection((host, int(port)), timeout=10) as s, ctx.wrap_socket(s, server_hostname=sni) as t:
                    t.sendall(b"PING\n")
                    if t.recv(16) == b"PONG\n": done[i] += 1
            except Exception:
                errors[i] += 1
    ts = [threading.Thread(target=work, args=(i,)) for i in range(int(threads))]
    start = time.perf_counter(); [x.start() for x in ts]; [x.join() for x in ts]
    el = time.perf_counter() - start
    print(f"{sum(done) / el:.1f} {sum(errors)}")

if __name__ == "__main__":
    role, args = sys.argv[1], sys.argv[2:]
    {"server": server, "bulk": bulk, "rate": rate}[role](*args)
