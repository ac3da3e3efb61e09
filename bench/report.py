#!/usr/bin/env python3
"""Turns scripts/bench.sh's run records (one JSON object per line) into
bench/results.json (machine, every run with derived figures, headline
ratios per frame size, targets) and a Markdown table for the README.

Usage: report.py RUNS.jsonl OUT.json OUT.md --date D --nproc N --cpu MODEL ...
"""

import argparse
import json

# A run is loss-free when nothing was dropped anywhere and at least this share
# of what the agent should forward was forwarded (a handful of frames that are
# not the generator's, e.g. IPv6 neighbour discovery, may reach the pod).
LOSS_FREE_SHARE = 0.9999


def derive(r):
    """Adds the per-run figures to a raw record and returns it."""
    mode = r["mode"]
    if mode == "idle":
        r["cpu_percent"] = 100.0 * r["cpu_seconds"] / r["seconds"]
        return r
    if mode in ("floor", "floor-txring"):
        f, sim = r["floor"], r["sim"]
        secs = f["seconds"]
        received = sim["totals"]["packets"]
        r.update(
            offered_pps=f["pps"],
            forwarded=f["sent"],
            forwarded_pps=f["pps"],
            received=received,
            receiver_loss=max(0, f["sent"] - received) + sim["totals"]["lost"],
            cpu_seconds=f["cpu_seconds"],
        )
        r["cpu_us_per_packet"] = 1e6 * f["cpu_seconds"] / max(1, f["sent"])
        r["loss_free"] = r["receiver_loss"] == 0 and f["sent"] > 0
        return r
    g = r["gen"]
    secs = g["seconds"]
    r["offered_pps"] = g["pps"]
    r["reached_pps"] = r["reached"] / secs
    r["captured_pps"] = r["captured"] / secs
    # What should be forwarded: every frame that reached the pod, or the
    # matching share of them with the 10% filter.
    share = g["matched"] / g["sent"] if mode == "agent-filter" and g["sent"] else 1.0
    expected = r["reached"] * share
    r["expected"] = round(expected)
    if mode == "tcpdump":
        r["cpu_us_per_packet"] = 1e6 * r["cpu_seconds"] / max(1, r["captured"])
        r["captured_share"] = r["captured"] / expected if expected else None
        return r
    sim = r["sim"]
    received = sim["totals"]["packets"]
    r["forwarded_pps"] = r["forwarded"] / secs
    r["received"] = received
    r["receiver_loss"] = max(0, r["forwarded"] - received) + sim["totals"]["lost"]
    r["forwarded_share"] = r["forwarded"] / expected if expected else None
    r["cpu_us_per_packet"] = 1e6 * r["cpu_seconds"] / max(1, r["forwarded"])
    lat = sim.get("latency") or {}
    r["latency_p50_us"] = lat.get("p50_us")
    r["latency_p99_us"] = lat.get("p99_us")
    r["loss_free"] = (
        r["kernel_drops"] == 0
        and r["receiver_loss"] == 0
        and r["send_errors"] == 0
        and r["forwarded"] >= LOSS_FREE_SHARE * expected
    )
    return r


def headline(runs, size):
    """Ratios for one frame size: the agent against the send floor."""
    agent = [r for r in runs if r["mode"] == "agent" and r["size"] == size]
    floor = {r["rate"]: r for r in runs if r["mode"] == "floor" and r["size"] == size}
    tcpdump = [r for r in runs if r["mode"] == "tcpdump" and r["size"] == size]
    filt = [r for r in runs if r["mode"] == "agent-filter" and r["size"] == size]
    h = {"size": size}
    if not agent or not floor:
        return h
    # CPU per packet depends on the rate (batch sizes), so compare at the same
    # paced rate: the highest one at which the agent lost nothing.
    paced_ok = [r for r in agent if r["loss_free"] and r["rate"] in floor and r["rate"] > 0]
    cmp = max(paced_ok, key=lambda r: r["rate"]) if paced_ok else min(agent, key=lambda r: r["rate"] or 1e12)
    if cmp["rate"] in floor:
        f = floor[cmp["rate"]]
        h["cpu_compared_at_pps"] = cmp["rate"]
        h["agent_cpu_us_per_packet"] = cmp["cpu_us_per_packet"]
        h["floor_cpu_us_per_packet"] = f["cpu_us_per_packet"]
        h["cpu_ratio"] = cmp["cpu_us_per_packet"] / f["cpu_us_per_packet"]
    ok = [r["forwarded_pps"] for r in agent if r["loss_free"]]
    fok = [r["forwarded_pps"] for r in floor.values() if r["loss_free"]]
    h["agent_loss_free_pps"] = max(ok) if ok else 0
    h["floor_loss_free_pps"] = max(fok) if fok else 0
    h["floor_max_pps"] = max(r["forwarded_pps"] for r in floor.values())
    if h["floor_loss_free_pps"]:
        h["loss_free_ratio"] = h["agent_loss_free_pps"] / h["floor_loss_free_pps"]
    top = max(agent, key=lambda r: (r["rate"] == 0, r["reached_pps"]))
    h["generator_max_pps"] = top["reached_pps"]
    h["forwarded_share_at_max"] = top["forwarded_share"]
    h["kernel_drops_at_max"] = top["kernel_drops"]
    h["agent_peak_rss_kib"] = max(r["peak_rss_kib"] for r in agent)
    h["receiver_lost_anything"] = any(r["receiver_loss"] for r in agent + filt)
    if filt:
        ftop = max(filt, key=lambda r: (r["rate"] == 0, r["reached_pps"]))
        h["filter_forwarded_share_at_max"] = ftop["forwarded_share"]
        h["filter_cpu_us_per_reached_packet_at_max"] = 1e6 * ftop["cpu_seconds"] / max(1, ftop["reached"])
    txring = {r["rate"]: r for r in runs if r["mode"] == "floor-txring" and r["size"] == size}
    if txring:
        # Per-packet CPU of the TX ring against the raw socket, rate by rate.
        h["txring_cpu_ratio_by_rate"] = {
            str(rate): txring[rate]["cpu_us_per_packet"] / floor[rate]["cpu_us_per_packet"]
            for rate in txring
            if rate in floor
        }
        h["txring_max_pps"] = max(r["forwarded_pps"] for r in txring.values())
    if tcpdump:
        ttop = max(tcpdump, key=lambda r: (r["rate"] == 0, r["reached_pps"]))
        h["tcpdump_captured_share_at_max"] = ttop["captured_share"]
        h["tcpdump_cpu_us_per_packet_at_max"] = ttop["cpu_us_per_packet"]
    return h


def fmt(v, spec=",.0f", none="–"):
    return none if v is None else format(v, spec)


def markdown(meta, runs, heads, idle):
    out = []
    out.append(
        f"Measured {meta['date']} on {meta['nproc']} CPUs ({meta['cpu']}), kernel {meta['kernel']}, "
        f"load average {meta['load_before']} before / {meta['load_after']} after, "
        f"{meta['seconds_per_run']} s per run, whole run {meta['elapsed_seconds']} s "
        "(`scripts/bench.sh`). Generator pinned to CPU 0, capturer / send floor to CPU 1."
    )
    out.append("")
    out.append(
        "| frame | contender | offered pps | reached pod pps | captured pps | kernel drops | forwarded pps "
        "| receiver loss | forwarded % | CPU s / M pkts | peak RSS MiB | latency p50 / p99 µs |"
    )
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        if r["mode"] == "idle":
            continue
        floor = r["mode"].startswith("floor")
        share = r.get("forwarded_share") if r["mode"] != "tcpdump" else r.get("captured_share")
        lat = "–"
        if r.get("latency_p50_us") is not None:
            lat = f"{r['latency_p50_us']:,.0f} / {r['latency_p99_us']:,.0f}"
        rss = r.get("peak_rss_kib")
        out.append(
            "| {} B | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                r["size"],
                r["mode"] + (" (paced)" if r["rate"] else " (max)"),
                fmt(r.get("offered_pps")),
                "–" if floor else fmt(r["reached_pps"]),
                "–" if floor else fmt(r["captured_pps"]),
                "–" if floor else fmt(r["kernel_drops"], ","),
                "–" if r["mode"] == "tcpdump" else fmt(r["forwarded_pps"]),
                "–" if r["mode"] == "tcpdump" else fmt(r["receiver_loss"], ","),
                "–" if floor or share is None else f"{100 * share:.2f}",
                fmt(r["cpu_us_per_packet"], ".2f"),
                "–" if rss is None else f"{rss / 1024:.1f}",
                lat,
            )
        )
    out.append("")
    out.append(
        "| frame | agent CPU / pkt | send floor CPU / pkt | ratio (target ≤ 1.25) | agent loss-free pps "
        "| floor loss-free pps | ratio (target ≥ 0.90) | forwarded at generator max (target ≥ 99%) "
        "| tcpdump captured at max |"
    )
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for h in heads:
        if "cpu_ratio" not in h:
            continue
        out.append(
            "| {} B | {:.2f} µs | {:.2f} µs | {:.2f} (at {:,} pps) | {} | {} | {} | {:.2f}% of {} pps | {} |".format(
                h["size"],
                h["agent_cpu_us_per_packet"],
                h["floor_cpu_us_per_packet"],
                h["cpu_ratio"],
                h["cpu_compared_at_pps"],
                fmt(h["agent_loss_free_pps"]),
                fmt(h["floor_loss_free_pps"]),
                fmt(h.get("loss_free_ratio"), ".2f"),
                100 * (h["forwarded_share_at_max"] or 0),
                fmt(h["generator_max_pps"]),
                fmt(100 * h["tcpdump_captured_share_at_max"], ".2f") + "%"
                if h.get("tcpdump_captured_share_at_max") is not None
                else "–",
            )
        )
    if idle:
        out.append("")
        out.append(
            f"Idle agent (no traffic, 5 s, all threads' run time from /proc/PID/task/*/schedstat): "
            f"{idle['cpu_percent']:.4f}% of a core, "
            f"RSS {idle['rss_kib'] / 1024:.1f} MiB (peak {idle['peak_rss_kib'] / 1024:.1f} MiB)."
        )
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("out_json")
    ap.add_argument("out_md")
    for name in ("date", "nproc", "cpu", "kernel", "load-before", "load-after", "seconds-per-run", "elapsed"):
        ap.add_argument("--" + name, required=True)
    a = ap.parse_args()
    with open(a.runs) as f:
        runs = [derive(json.loads(line)) for line in f if line.strip()]
    meta = {
        "date": a.date,
        "nproc": int(a.nproc),
        "cpu": a.cpu,
        "kernel": a.kernel,
        "load_before": a.load_before,
        "load_after": a.load_after,
        "seconds_per_run": float(a.seconds_per_run),
        "elapsed_seconds": int(a.elapsed),
    }
    sizes = sorted({r["size"] for r in runs if "size" in r})
    heads = [headline(runs, s) for s in sizes]
    idle = next((r for r in runs if r["mode"] == "idle"), None)
    for r in runs:
        # Keep the receiver's totals and latency, not its per-flow details.
        if "sim" in r:
            r["sim"] = {k: r["sim"].get(k) for k in ("elapsed_seconds", "totals", "latency")}
    result = {"machine": meta, "headlines": heads, "idle": idle, "runs": runs}
    with open(a.out_json, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    with open(a.out_md, "w") as f:
        f.write(markdown(meta, runs, heads, idle))


if __name__ == "__main__":
    main()
