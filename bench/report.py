#!/usr/bin/env python3
"""Turns one bench/run.sh run into the throughput section of docs/benchmarks.md and a bar chart (SVG).
Only the part between the <!-- anchors:begin --> and <!-- anchors:end --> markers is replaced."""
import json, os, sys

out, md_path, svg_path = sys.argv[1], sys.argv[2], sys.argv[3]
a = json.load(open(os.path.join(out, "anchors.json")))
meta, rows = a["meta"], {r["name"]: r for r in a["throughput"] if r.get("ok") and r.get("receiver_gbps")}
hs = {h["name"]: h for h in a["handshake"] if h.get("ok")}
def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None
mem = load("sessions.json")
rtt_dir = os.path.join(out, "rtt")
rtt = {}
if os.path.isdir(rtt_dir):
    for fn in os.listdir(rtt_dir):
        r = json.load(open(os.path.join(rtt_dir, fn)))
        rtt[r["name"]] = r

labels = {
    "raw_veth": "no tunnel (veth)", "stunnel": "stunnel TLS pipe", "ovpn_tcp": "OpenVPN TCP",
    "ovpn_tcp_nodelay": "OpenVPN TCP nodelay", "ovpn_udp": "OpenVPN UDP", "ocserv_cstp": "openconnect → ocserv",
    "isotun": "isotun → isotun", "isotun_plain": "isotun → isotun, plain CSTP", "isotun_oc": "openconnect → isotun",
    "isotun_ratelimit": "isotun, rate-limited",
    "stunnel_p4": "stunnel, 4 flows", "isotun_p4": "isotun → isotun, 4 flows, 2 queues", "isotun_p4_q1": "isotun → isotun, 4 flows, 1 queue",
}
def g(n, k="receiver_gbps"): return rows[n][k] if n in rows else None
def ratio(x, y): return f"{x / y:.2f}×" if x and y else "n/a"
def f(x, d=2): return "–" if x is None else f"{x:.{d}f}"

L = []
L.append(f"Run of {meta['timestamp']} on {meta['cpu_model']} ({meta['nproc']} vCPU, kernel {meta['kernel']}), "
         f"iperf3 {meta['duration_s']} s single TCP stream {meta['topology']}. Command: `sudo bench/run.sh`. "
         "Every isotun row is measured warm: after a 2 s transfer through its tunnel and a wait until the runtime's background "
         "compiler is idle in both processes (see [Warm throughput](#warm-throughput)). "
         "All rows come from this one run; the machine is shared and noisy, so read the ratios, not the absolutes.")
L.append("")
L.append("![throughput and CPU per GB](benchmarks.svg)")
L.append("")
L.append("| system | Gbit/s | CPU·s/GB | client CPU s | server CPU s | TUN MTU | notes |")
L.append("|---|---|---|---|---|---|---|")
for n in ["raw_veth", "stunnel", "ovpn_tcp", "ovpn_tcp_nodelay", "ovpn_udp", "ocserv_cstp", "isotun", "isotun_plain", "isotun_oc", "stunnel_p4", "isotun_p4", "isotun_p4_q1", "isotun_ratelimit"]:
    if n not in rows: continue
    r = rows[n]
    L.append(f"| {labels.get(n, n)} | {f(r['receiver_gbps'])} | {f(r.get('cpu_s_per_gb'), 3)} | {f(r.get('cpu_client_s'))} | "
             f"{f(r.get('cpu_server_s'))} | {r.get('tun_mtu') or '–'} | {r.get('notes', '')} |")
L.append("")
L.append("**The data-path goals, from this run:**")
L.append("")
L.append(f"- isotun → isotun vs stunnel: throughput **{ratio(g('isotun'), g('stunnel'))}** (goal ≥ 1.2×), CPU per GB "
         f"**{ratio(g('isotun', 'cpu_s_per_gb'), g('stunnel', 'cpu_s_per_gb'))}** (goal ≤ 1.0×).")
L.append(f"- openconnect → isotun vs openconnect → ocserv: **{ratio(g('isotun_oc'), g('ocserv_cstp'))}** (goal ≥ 1.2×).")
L.append(f"- What the extensions are worth: isotun with batching + GSO vs plain CSTP between the same two programs: "
         f"**{ratio(g('isotun'), g('isotun_plain'))}**.")
if "isotun_p4" in rows:
    L.append(f"- Four flows at once (iperf3 -P 4): two queues vs one **{ratio(g('isotun_p4'), g('isotun_p4_q1'))}**; "
             f"isotun with two queues vs stunnel (one TLS connection per flow) **{ratio(g('isotun_p4'), g('stunnel_p4'))}** throughput (goal ≥ 1.0×), "
             f"**{ratio(g('isotun_p4', 'cpu_s_per_gb'), g('stunnel_p4', 'cpu_s_per_gb'))}** CPU per GB. Client and server share the same 2 vCPUs here.")
if "isotun_ratelimit" in rows:
    conf = rows["isotun_ratelimit"].get("notes", "")
    L.append(f"- Per-user rate limit: {conf}; measured {f(g('isotun_ratelimit'), 4)} Gbit/s at the receiver.")
L.append("")
if rtt:
    rtt_labels = [("rtt_raw", "no tunnel (veth)"), ("rtt_ovpn_udp", "OpenVPN UDP"), ("rtt_ocserv", "openconnect → ocserv"),
                  ("rtt_isotun_oc", "openconnect → isotun"), ("isotun_rtt", "isotun → isotun")]
    L.append("**Ping RTT through each tunnel, idle** (after the same warm-up for every tunnel, 400 quick pings and 1 s of rest, and for a .NET end until its compiler is idle; "
             "then 25 pings 0.2 s apart, the same run; under bulk = 50 pings during a 12 s iperf3 through the same tunnel):")
    L.append("")
    L.append("| path | min ms | avg ms | p50 ms | p99 ms | max ms | loss |")
    L.append("|---|---|---|---|---|---|---|")
    for n, label in rtt_labels:
        if n not in rtt: continue
        for kind in ("idle", "under_bulk"):
            i = rtt[n].get(kind)
            if not i: continue
            L.append(f"| {label}{', under bulk' if kind == 'under_bulk' else ''} | {i['min_ms']} | {i['avg_ms']} | {i.get('p50_ms', '–')} | "
                     f"{i.get('p99_ms', '–')} | {i['max_ms']} | {i['loss']} |")
    if "isotun_rtt" in rtt and "rtt_ocserv" in rtt:
        L.append("")
        L.append(f"Idle RTT, isotun → isotun vs openconnect → ocserv: **{ratio(rtt['isotun_rtt']['idle']['avg_ms'], rtt['rtt_ocserv']['idle']['avg_ms'])}** "
                 f"(goal ≤ 1.0×, and max < 2 ms: {rtt['isotun_rtt']['idle']['max_ms']} ms)"
                 + (f"; under bulk p99 {rtt['isotun_rtt']['under_bulk']['p99_ms']} ms (goal < 5 ms)." if rtt['isotun_rtt'].get('under_bulk') else "."))
    L.append("")
if hs:
    L.append("**TLS handshakes**, sequential from the client namespace, the same python probe against stunnel and against "
             "the isotun listener (for isotun the probe's 1-byte echo is the first byte of an HTTP answer; the isotun server "
             "is first warmed with 3,000 full TLS 1.3 handshakes and 1,000 of each other kind, `HS_WARM`, then left until its "
             "compiler is idle, see [Handshake cost](#handshake-cost-cold-and-warm)), ECDSA P-256, 1,000 handshakes per probe (`HS_N`); "
             "the `_p` rows are several `openssl s_time -new` clients at once against stunnel and against the warmed isotun listener, "
             "one after the other (client and server share the two cores):")
    L.append("")
    L.append("| probe | TLS | handshakes/s | mean ms | p99 ms | resumed | server CPU ms/handshake |")
    L.append("|---|---|---|---|---|---|---|")
    for n, h in hs.items():
        L.append(f"| {n} | {h.get('tls')} | {f(h.get('rate_per_s'), 1)} | {f(h.get('mean_ms'), 3)} | {f(h.get('p99_ms'), 3)} | "
                 f"{h.get('reused', '–')} | {f(h.get('srv_cpu_ms_per_hs'), 2)} |")
    L.append("")
    par = next((n[len("isotun_full_tls13_p"):] for n in hs if n.startswith("isotun_full_tls13_p")), None)
    pairs = [("the python probe, one at a time", "isotun_full_tls13", "py_full_tls13")]
    if par:
        pairs.append((f"{par} openssl s_time clients at once", f"isotun_full_tls13_p{par}", f"stunnel_full_tls13_p{par}"))
    goals = [f"{what}: **{ratio(hs[i]['rate_per_s'], hs[s_]['rate_per_s'])}** the rate at **{ratio(hs[i]['srv_cpu_ms_per_hs'], hs[s_]['srv_cpu_ms_per_hs'])}** the CPU"
             for what, i, s_ in pairs if i in hs and s_ in hs]
    if goals:
        L.append("Full TLS 1.3 handshakes, isotun vs stunnel (goals: ≥ 1.2× the rate, ≤ 1.0× the CPU), " + "; ".join(goals) + ".")
        L.append("")
if mem:
    L.append(f"**Memory per idle session:** {mem['sessions']} concurrent sessions ({mem['active']} active at the measurement) "
             f"from `isotun lab load` (certificate login, CONNECT, then idle; no TUN on the load side). Server RSS "
             f"{mem['rss_before_kib']} KiB → {mem['rss_after_kib']} KiB: **{mem['per_session_kib']:.1f} KiB per idle session** "
             "(TLS state, socket, session and queue objects; an idle connection holds no receive buffer: it waits with a zero-byte read)."
             + (f" Server CPU while they idled, over 20 s: {mem['idle_cpu_ms_per_s']:.1f} ms per second." if 'idle_cpu_ms_per_s' in mem else ""))
    L.append("")
section = "\n".join(L)

md = open(md_path).read() if os.path.exists(md_path) else "# Benchmarks\n"
begin, end = "<!-- anchors:begin -->", "<!-- anchors:end -->"
block = f"{begin}\n## Throughput, latency, handshakes, memory (bench/run.sh)\n\n{section}\n{end}"
if begin in md:
    md = md[:md.index(begin)] + block + md[md.index(end) + len(end):]
else:
    head, _, rest = md.partition("\n")
    md = head + "\n\n" + block + "\n" + rest
open(md_path, "w").write(md)

# Bar chart: Gbit/s and CPU s/GB side by side per system.
names = [n for n in ["stunnel", "ovpn_tcp", "ovpn_udp", "ocserv_cstp", "isotun_oc", "isotun_plain", "isotun"] if n in rows]
if not names:
    sys.exit(0)  # a run of latency or handshake rows only: no chart
W, H, top, left, bw = 900, 420, 40, 200, 14
gmax = max(rows[n]["receiver_gbps"] for n in names) * 1.1
cmax = max((rows[n].get("cpu_s_per_gb") or 0) for n in names) * 1.1 or 1
rowh = (H - top - 40) / max(1, len(names))
s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
     f'<rect width="{W}" height="{H}" fill="white"/>',
     f'<text x="{left}" y="20" font-size="14" font-weight="bold">Gbit/s (blue) and CPU·s per GB (orange), one run of bench/run.sh</text>']
span = W - left - 120
for i, n in enumerate(names):
    y = top + i * rowh
    r = rows[n]
    gw = span * r["receiver_gbps"] / gmax
    c = r.get("cpu_s_per_gb") or 0
    cw = span * c / cmax
    s.append(f'<text x="{left - 8}" y="{y + bw + 4}" text-anchor="end">{labels.get(n, n)}</text>')
    s.append(f'<rect x="{left}" y="{y}" width="{gw:.1f}" height="{bw}" fill="#3b6fb6"/>')
    s.append(f'<text x="{left + gw + 4:.1f}" y="{y + bw - 2}">{r["receiver_gbps"]:.2f} Gbit/s</text>')
    s.append(f'<rect x="{left}" y="{y + bw + 2}" width="{cw:.1f}" height="{bw}" fill="#e08a2c"/>')
    s.append(f'<text x="{left + cw + 4:.1f}" y="{y + 2 * bw}">{c:.2f} CPU·s/GB</text>')
s.append("</svg>")
open(svg_path, "w").write("\n".join(s))
