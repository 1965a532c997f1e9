#!/usr/bin/env python3
"""Turns bench/compare.sh's results.jsonl into the markdown report: one table of medians with
ratios to nginx and to direct, the issue's targets (met / missed, by how much), and for a
--scale run the idle-tunnel table at each size."""

import argparse
import json
import statistics
import sys

TARGETS = ["direct", "wsgate", "nginx", "haproxy"]
RATIOS = [("wsgate", "nginx"), ("haproxy", "nginx"), ("wsgate", "direct"), ("nginx", "direct"),
          ("haproxy", "direct")]
# With a second wsgate build in the run (compare.sh target wsgate-b): its column and b÷a.
B_TARGETS = ["direct", "wsgate", "wsgate-b", "nginx", "haproxy"]
B_RATIOS = [("wsgate-b", "wsgate"), ("wsgate", "nginx"), ("wsgate-b", "nginx"),
            ("haproxy", "nginx")]


def per(amount, count):
    return amount / count if count else None


def extract(mode, r):
    """Metric name -> value for one client result."""
    if r.get("failed"):
        return {}
    cpu = r.get("proxy_cpu_s")
    out = {}
    if mode == "handshake":
        out["hs_rate"] = r["rate"]
        out["hs_upgrade_p50_us"] = r["upgrade_p50_us"]
        out["cpu_hs_us"] = per(cpu * 1e6, r["handshakes"])
        out["cpu_hs_user_us"] = per(r.get("proxy_user_s", 0) * 1e6, r["handshakes"])
        out["load_cpu_hs"] = per(r["client_cpu_s"] + r["backend_cpu_s"], r["seconds"])
        out["hs_errors"] = r["errors"]
    elif mode == "echo":
        out["echo_rate"] = r["rate"]
        out["echo_p50_us"] = r["rtt_p50_us"]
        out["echo_p99_us"] = r["rtt_p99_us"]
        out["echo_p999_us"] = r["rtt_p999_us"]
        out["cpu_msg_us"] = per(cpu * 1e6, r["replies"])
        out["cpu_msg_user_us"] = per(r.get("proxy_user_s", 0) * 1e6, r["replies"])
    elif mode == "bulk":
        out["bulk_mbps"] = r["mb_per_s"]
        out["cpu_mb_ms"] = per(cpu * 1e3, r["echoed_bytes"] / 1e6)
        out["cpu_mb_user_ms"] = per(r.get("proxy_user_s", 0) * 1e3, r["echoed_bytes"] / 1e6)
        out["load_cpu_bulk"] = per(r["client_cpu_s"] + r["backend_cpu_s"], r["seconds"])
    elif mode == "idle":
        k = int(r["tunnels"])
        ok = r["opened"] == r["tunnels"] and r["alive"] == r["opened"]
        out[f"idle_rss_kib@{k}"] = r["rss_per_tunnel"] / 1024 if ok else None
        out[f"idle_probe_p50_us@{k}"] = r["probe_p50_us"]
        out[f"idle_probe_p99_us@{k}"] = r["probe_p99_us"]
        out[f"idle_ok@{k}"] = 1.0 if ok else 0.0
    return out


def load(path):
    samples = {}  # (target, transport, metric) -> [values]
    pending = set()
    loads = []
    for line in open(path):
        row = json.loads(line)
        key = (row["target"], row["transport"])
        if row.get("pending"):
            pending.add(key)
            continue
        loads.append(row.get("load", 0))
        r = row["r"]
        for metric, value in extract(r.get("mode"), r).items():
            # Without a proxy there is no proxy CPU or memory to report.
            if row["target"] == "direct" and metric.startswith(("cpu_", "idle_rss")):
                continue
            if value is not None:
                samples.setdefault(key + (metric,), []).append(value)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    return medians, samples, pending, loads


def fmt(value, digits=None):
    if value is None:
        return "–"
    if digits is not None:
        return f"{value:.{digits}f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


ROWS = [
    ("hs_rate", "handshakes/s (full cycle: connect, upgrade, 1 echo, close)", None),
    ("echo_rate", "echo messages/s achieved (target rate {rate:,}/s)", None),
    ("echo_p50_us", "echo RTT p50, µs ({tunnels} tunnels, {size} B, {rate:,}/s)", None),
    ("echo_p99_us", "echo RTT p99, µs", None),
    ("bulk_mbps", "bulk MB/s echoed ({bulk} B messages)", None),
    ("idle_rss_kib@9000", "proxy RSS per idle tunnel at 9000, KiB", 2),
    ("cpu_hs_us", "proxy CPU per handshake, µs", None),
    ("cpu_msg_us", "proxy CPU per echoed message, µs", 2),
    ("cpu_mb_ms", "proxy CPU per MB echoed, ms", 2),
    ("cpu_hs_user_us", "… of which user space, per handshake, µs", None),
    ("cpu_msg_user_us", "… of which user space, per echoed message, µs", 2),
    ("cpu_mb_user_ms", "… of which user space, per MB echoed, ms", 2),
    ("load_cpu_hs", "client+backend CPU during handshakes (cores; cpu 0 = 1.0)", 2),
]


def table(medians, pending, args):
    cols = TARGETS + [f"{a}÷{b}" for a, b in RATIOS]
    out = ["| metric | tr | " + " | ".join(cols) + " |",
           "|---|---|" + "---:|" * len(cols)]
    for metric, label, digits in ROWS:
        label = label.format(rate=int(args.echo_rate), tunnels=args.echo_tunnels,
                             size=args.echo_size, bulk=args.bulk_size)
        for tr in ("ws", "wss"):
            values = {t: medians.get((t, tr, metric)) for t in TARGETS}
            if all(v is None for v in values.values()) and not any(
                    (t, tr) in pending for t in TARGETS):
                continue
            cells = []
            for t in TARGETS:
                cells.append("pending" if (t, tr) in pending else fmt(values[t], digits))
            for a, b in RATIOS:
                va, vb = values[a], values[b]
                cells.append(f"{va / vb:.2f}" if va is not None and vb else "–")
            out.append(f"| {label} | {tr} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def verdict(name, value, limit, lower_is_better=True):
    if value is None or limit is None:
        return f"- {name}: not measured"
    ok = value <= limit if lower_is_better else value >= limit
    word = "MET" if ok else "MISSED"
    return f"- {name}: wsgate {fmt(value)} vs limit {fmt(limit)} → {word} ({value / limit:.2f}× the limit)"


def targets(medians):
    m = lambda t, tr, k: medians.get((t, tr, k))  # noqa: E731
    lines = []

    def best(tr, k, pick):
        vals = [v for v in (m("nginx", tr, k), m("haproxy", tr, k)) if v is not None]
        return pick(vals) if vals else None

    for tr, factor in (("ws", 0.5), ("wss", 0.9)):
        b = best(tr, "cpu_hs_us", min)
        lines.append(verdict(f"CPU per {tr} handshake ≤ {factor}× better anchor",
                             m("wsgate", tr, "cpu_hs_us"), b * factor if b else None))
    for tr in ("ws", "wss"):
        b = best(tr, "cpu_msg_us", min)
        lines.append(verdict(f"CPU per echoed message ({tr}) ≤ 0.7× better anchor",
                             m("wsgate", tr, "cpu_msg_us"), b * 0.7 if b else None))
        h = m("haproxy", tr, "cpu_mb_ms")
        lines.append(verdict(f"CPU per bulk MB ({tr}) ≤ 0.8× HAProxy",
                             m("wsgate", tr, "cpu_mb_ms"), h * 0.8 if h else None))
    # (The echo rate is offered at a fixed rate, so it is no throughput figure.)
    for tr in ("ws", "wss"):
        for k, name in (("hs_rate", "handshakes/s"), ("bulk_mbps", "bulk MB/s")):
            lines.append(verdict(f"{name} ({tr}) ≥ better anchor", m("wsgate", tr, k),
                                 best(tr, k, max), lower_is_better=False))
    lines.append(verdict("RSS per idle ws tunnel ≤ 4 KiB", m("wsgate", "ws", "idle_rss_kib@9000"),
                         4.0))
    n = m("nginx", "wss", "idle_rss_kib@9000")
    lines.append(verdict("RSS per idle wss tunnel ≤ 0.5× nginx",
                         m("wsgate", "wss", "idle_rss_kib@9000"), n * 0.5 if n else None))
    lines.append(verdict("RSS per idle wss tunnel < HAProxy",
                         m("wsgate", "wss", "idle_rss_kib@9000"),
                         m("haproxy", "wss", "idle_rss_kib@9000")))
    return "\n".join(lines)


def idle_table(medians, sizes):
    head = "| target | tr | " + " | ".join(
        f"RSS/tunnel KiB @{k} | hs p50/p99 ms @{k}" for k in sizes) + " |"
    out = [head, "|---|---|" + "---:|---:|" * len(sizes)]
    for t in TARGETS:
        for tr in ("ws", "wss"):
            cells = []
            for k in sizes:
                rss = medians.get((t, tr, f"idle_rss_kib@{k}"))
                p50 = medians.get((t, tr, f"idle_probe_p50_us@{k}"))
                p99 = medians.get((t, tr, f"idle_probe_p99_us@{k}"))
                cells.append(fmt(rss, 2) if t != "direct" else "–")
                cells.append(f"{p50 / 1000:.2f} / {p99 / 1000:.2f}" if p50 is not None else "–")
            if any(c != "–" for c in cells):
                out.append(f"| {t} | {tr} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("--elapsed", type=int, default=0)
    p.add_argument("--workers", default="1")
    p.add_argument("--proxy-cpus", default="1")
    p.add_argument("--load-cpus", default="0")
    p.add_argument("--echo-rate", type=float, default=20000)
    p.add_argument("--echo-size", default="128")
    p.add_argument("--echo-tunnels", default="100")
    p.add_argument("--bulk-size", default="1048576")
    args = p.parse_args()
    medians, samples, pending, loads = load(args.results)
    global TARGETS, RATIOS
    if any(t == "wsgate-b" for (t, _, _) in medians):
        TARGETS, RATIOS = B_TARGETS, B_RATIOS
    # Only the targets this run measured, and ratios between them.
    present = {t for (t, _, _) in medians} | {t for (t, _) in pending}
    TARGETS = [t for t in TARGETS if t in present]
    RATIOS = [(a, b) for a, b in RATIOS if a in present and b in present]
    runs = max((len(v) for v in samples.values()), default=0)
    print(f"### wsgate vs nginx vs HAProxy — {args.workers} worker(s), proxy on cpu "
          f"{args.proxy_cpus}, client+backend on cpu {args.load_cpus}; medians of {runs} runs, "
          f"{args.elapsed} s in all; load average during runs "
          f"{min(loads, default=0):.1f}–{max(loads, default=0):.1f}\n")
    print(table(medians, pending, args))
    print("\nratios a÷b are of the medians; CPU figures are utime+stime of the proxy's processes "
          "over the measured window divided by the work done in it (the user-space share is "
          "tick-sampled, so only roughly right); on this shared 2-core machine run-to-run noise "
          "is about ±5% on CPU figures and ±10% on rates.\n")
    print("#### Targets (wsgate against the better of nginx / HAProxy, same run)\n")
    print(targets(medians))
    sizes = sorted({int(k[2].split("@")[1]) for k in medians if k[2].startswith("idle_rss_kib@")})
    if len(sizes) > 1 or any(t == "direct" for (t, _, m) in medians if m.startswith("idle_")):
        print("\n#### Idle tunnels: proxy RSS per tunnel and handshake latency while they are held\n")
        print(idle_table(medians, sizes))
    bad = [(k, v) for k, v in medians.items() if k[2].startswith("idle_ok@") and v < 1]
    for (t, tr, metric), _ in bad:
        print(f"\nwarning: {t}/{tr} {metric}: not every idle tunnel opened and stayed alive",
              file=sys.stderr)


if __name__ == "__main__":
    main()
