#!/usr/bin/env python3
"""Config propagation benchmark (not a test): time from a route file write to the new route
being in force on N proxies subscribed to one wsgate-controller, for N = 1, 10, 50.

Each iteration writes a route file with a new pathPrefix, then reads the JSON log timestamps
(UTC, microseconds) of the controller's "snapshot <version>" line and of each proxy's
"routes applied ... version <version>" line, which the proxy logs right after posting the new
snapshot to its workers. Every proxy is then checked to really answer 101 on the new path
(untimed). The file-to-controller leg includes the watcher's debounce holdoff (100 ms).

    WSGATE_BIN_DIR=build/bin python3 bench/config_propagation.py [--proxies 1,10,50] [--iterations 20]
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from test_controlplane import proxies, start_controller, start_cp_proxy, upgrade_status  # noqa: E402
from harness import echo_route_spec, start_echo_backend, wait_until, write_route  # noqa: E402


def log_time(line):
    """Epoch seconds of a JSON log line's "ts"."""
    stamp = json.loads(line[line.index("{"):])["ts"]
    parsed = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return parsed.replace(tzinfo=datetime.timezone.utc).timestamp()


def percentile(values, fraction):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


def run(count, iterations):
    directory = tempfile.mkdtemp(prefix="wsgate-bench-")
    processes = []
    try:
        echo = start_echo_backend()
        processes.append(echo)
        routes = os.path.join(directory, "routes")
        os.makedirs(routes)
        write_route(routes, "bench", echo_route_spec(echo.port, "/v0"))
        controller = start_controller(routes, extra_args=["--log-format", "json"])
        processes.append(controller)
        fleet = []
        for index in range(count):
            fleet.append(start_cp_proxy(controller.grpc_port, f"bench-{index}", ["--log-format", "json"]))
            processes.append(fleet[-1])
        wait_until(lambda: len(proxies(controller)) == count and all(
            p["acked_version"] for p in proxies(controller).values()), 60, f"{count} proxies to sync")

        to_controller, per_proxy, all_proxies = [], [], []
        for i in range(1, iterations + 1):
            controller_mark = controller.mark()
            marks = [proxy.mark() for proxy in fleet]
            started = time.time()
            write_route(routes, "bench", echo_route_spec(echo.port, f"/v{i}"))
            line = controller.wait_for_log(r'"msg":"snapshot (\w+):', 30, controller_mark)
            version = line.group(1)
            to_controller.append(log_time(line.string) - started)
            times = []
            for proxy, mark in zip(fleet, marks):
                applied = proxy.wait_for_log(r"routes applied: .* version " + version, 30, mark)
                times.append(log_time(applied.string) - started)
            per_proxy.extend(times)
            all_proxies.append(max(times))
            for proxy in fleet:  # really served, not only logged
                status = upgrade_status(proxy.port, f"/v{i}")
                assert status == 101, f"{proxy.name} answers {status} for /v{i}"
        return to_controller, per_proxy, all_proxies
    finally:
        for process in reversed(processes):
            process.terminate()
        shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxies", default="1,10,50")
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    ms = lambda seconds: f"{seconds * 1000:.1f}"  # noqa: E731
    rows = []
    for count in (int(n) for n in args.proxies.split(",")):
        to_controller, per_proxy, all_proxies = run(count, args.iterations)
        rows.append((count, args.iterations, ms(percentile(to_controller, 0.5)), ms(percentile(per_proxy, 0.5)),
                     ms(percentile(per_proxy, 0.99)), ms(percentile(all_proxies, 0.5)),
                     ms(percentile(all_proxies, 0.99))))
        print(f"N={count} done", file=sys.stderr, flush=True)
    print("| proxies | writes | file→controller p50 (ms) | file→one proxy p50 (ms) | file→one proxy p99 (ms) "
          "| file→all N p50 (ms) | file→all N p99 (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
