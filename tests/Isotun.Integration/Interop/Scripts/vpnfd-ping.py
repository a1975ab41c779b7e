#!/usr/bin/env python3
"""openconnect --script-tun helper for the interop tests: the tunnel without a kernel TUN, so without root.

openconnect hands this script VPNFD, an AF_UNIX datagram socket carrying one IP packet per datagram, and
the usual INTERNAL_IP4_* variables. For each address in PING_TARGETS it sends ICMP echo requests from the
tunnel address through that socket and prints one line: "reply from A" or "no reply from A". Then it stays
until openconnect closes its end, so openconnect keeps running until the test ends it."""
import os, select, socket, struct, time

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF

def echo_request(src, dst, ident, seq):
    payload = b"isotun-interop" + bytes(range(32))
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), ident, 0x4000, 64, 1, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + icmp

def is_reply(packet, src, dst, ident, seq):
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 1:
        return False
    ihl = (packet[0] & 15) * 4
    if packet[12:16] != dst or packet[16:20] != src or len(packet) < ihl + 8:
        return False
    typ, _, _, rid, rseq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
    return typ == 0 and rid == ident and rseq == seq

def main():
    sock = socket.socket(fileno=int(os.environ["VPNFD"]))
    src = socket.inet_aton(os.environ["INTERNAL_IP4_ADDRESS"])
    ident = os.getpid() & 0xFFFF
    for seq, target in enumerate(os.environ.get("PING_TARGETS", "").split(), start=1):
        dst = socket.inet_aton(target)
        ok = False
        for _ in range(5):
            sock.send(echo_request(src, dst, ident, seq))
            deadline = time.monotonic() + 2
            while not ok and time.monotonic() < deadline:
                ready, _, _ = select.select([sock], [], [], max(0, deadline - time.monotonic()))
                if ready:
                    ok = is_reply(sock.recv(65536), src, dst, ident, seq)
            if ok:
                break
        print(("reply from " if ok else "no reply from ") + target, flush=True)
    # Stay until openconnect goes away (it closes its end of the socket pair).
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass

main()
