#!/usr/bin/env python3
"""The timeline benchmark's application (scripts/bench-timeline.sh).

serve ADDR PORT WORK_US   an HTTP/1.1 keep-alive server: each request is
                          answered after WORK_US microseconds of work (a
                          response time an analyser would report).
pace ADDR PORT RATE COUNT one keep-alive connection, COUNT requests started
                          RATE a second (each after the previous response);
                          prints the rate reached.
analyse TRUTH COLLECTOR   tshark's per-response times (tcp.dstport,
                          tcp.seq_raw, http.time) from the pod's capture and
                          from the collector's GRE arrivals, joined by
                          response; prints JSON: the response-time error at
                          the collector (|collector - pod|) p50/p99/max in
                          microseconds, and the true response time's median.
"""
import json
import socket
import subprocess
import sys
import threading
import time

BODY = b"x" * 200
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY


def serve(addr, port, work_us):
    work = work_us / 1e6
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(16)

    def handle(conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                end = time.perf_counter() + work
                while time.perf_counter() < end:
                    pass
                conn.sendall(RESPONSE)

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def pace(addr, port, rate, count):
    s = socket.create_connection((addr, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        while True:
            left = due - time.perf_counter()
            if left <= 0:
                break
            if left > 0.0003:
                time.sleep(left - 0.0002)
        s.sendall(b"GET /%d HTTP/1.1\r\nHost: pod\r\n\r\n" % i)
        got = 0
        while got < len(RESPONSE):
            got += len(s.recv(65536))
    elapsed = time.perf_counter() - start
    s.close()
    print(round(count / elapsed, 1))


def response_times(pcap):
    out = subprocess.run(
        ["tshark", "-r", pcap, "-Y", "http.response", "-T", "fields",
         "-e", "tcp.dstport", "-e", "tcp.seq_raw", "-e", "http.time"],
        check=True, capture_output=True, text=True).stdout
    times = {}
    for line in out.splitlines():
        port, seq, t = line.split("\t")
        if t:
            times[(port, seq)] = float(t)
    return times


def pct(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def analyse(truth_pcap, collector_pcap):
    truth = response_times(truth_pcap)
    seen = response_times(collector_pcap)
    errors = sorted(abs(seen[k] - truth[k]) * 1e6 for k in truth if k in seen)
    rts = sorted(v * 1e6 for v in truth.values())
    if not errors:
        print(json.dumps({"responses": 0}))
        return
    print(json.dumps({
        "responses": len(errors),
        "missing_at_collector": len(truth) - len(errors),
        "error_p50_us": round(pct(errors, 0.5), 1),
        "error_p99_us": round(pct(errors, 0.99), 1),
        "error_max_us": round(errors[-1], 1),
        "true_rt_p50_us": round(pct(rts, 0.5), 1),
    }))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        serve(args[0], int(args[1]), float(args[2]))
    elif cmd == "pace":
        pace(args[0], int(args[1]), float(args[2]), int(args[3]))
    elif cmd == "analyse":
        analyse(args[0], args[1])
    else:
        sys.exit(f"http_pace.py: unknown command {cmd}")
