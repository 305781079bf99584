#!/usr/bin/env python3
"""S7's load for the xmlrpc meter server: reader threads doing get_job + submit_reading.

Each thread logs in once with its own ServerProxy, then loops get_job, submit_reading. Threads
are spread over several processes so the client's own GIL is not the bottleneck. Prints the same
lines as loadgen (`window-start`, `window-end`, then one JSON object); a unit is one reading.
"""

import argparse
import json
import multiprocessing
import os
import threading
import time
import xmlrpc.client


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def worker(url, threads, user, password, ready, times_conn, results_conn):
    sessions = []
    barrier_errors = []

    def login():
        try:
            proxy = xmlrpc.client.ServerProxy(url)
            session, _name = proxy.login(user, password)
            sessions.append((proxy, session))
        except Exception as exc:  # reported as setup failures
            barrier_errors.append(repr(exc))

    starters = [threading.Thread(target=login) for _ in range(threads)]
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    ready.release()
    t_start, t_end = times_conn.recv()
    latencies, errors = [], [0]
    lock = threading.Lock()

    def run(proxy, session):
        mine, local_errors, reading = [], 0, 0
        while True:
            sent = time.monotonic()
            if sent >= t_end:
                break
            try:
                meter = proxy.get_job(session)
                reading += 1
                proxy.submit_reading(session, meter, xmlrpc.client.DateTime(time.gmtime()), reading, "")
            except Exception:
                local_errors += 1
                continue
            done = time.monotonic()
            if t_start <= done < t_end:
                mine.append(done - sent)
        with lock:
            latencies.extend(mine)
            errors[0] += local_errors

    runners = [threading.Thread(target=run, args=pair) for pair in sessions]
    for thread in runners:
        thread.start()
    delay = t_start - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    cpu0 = time.process_time()
    for thread in runners:
        thread.join()
    cpu = time.process_time() - cpu0
    results_conn.send(
        {
            "latencies": latencies,
            "errors": errors[0],
            "setup_failures": len(barrier_errors),
            "setup_errors": barrier_errors[:3],
            "cpu_s": cpu,
        }
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    context = multiprocessing.get_context("fork")
    ready = context.Semaphore(0)
    children = []
    started = time.monotonic()
    for index in range(args.procs):
        share = args.threads // args.procs + (1 if index < args.threads % args.procs else 0)
        times_recv, times_send = context.Pipe(duplex=False)
        results_recv, results_send = context.Pipe(duplex=False)
        process = context.Process(
            target=worker,
            args=(args.url, share, args.user, args.password, ready, times_recv, results_send),
            daemon=True,
        )
        process.start()
        children.append((process, times_send, results_recv))
    for _ in children:
        ready.acquire()
    setup_s = time.monotonic() - started
    t_start = time.monotonic() + args.warmup
    t_end = t_start + args.duration
    for _process, times_send, _results in children:
        times_send.send((t_start, t_end))
    time.sleep(max(0.0, t_start - time.monotonic()))
    print("window-start", flush=True)
    time.sleep(max(0.0, t_end - time.monotonic()))
    print("window-end", flush=True)
    latencies, errors, setup_failures, cpu, setup_errors = [], 0, 0, 0.0, []
    for process, _times, results_recv in children:
        result = results_recv.recv()
        latencies += result["latencies"]
        errors += result["errors"]
        setup_failures += result["setup_failures"]
        setup_errors += result["setup_errors"]
        cpu += result["cpu_s"]
        process.join()
    units = len(latencies)
    print(
        json.dumps(
            {
                "mode": "xmlrpc",
                "connections": args.threads,
                "inflight": 1,
                "workers": args.procs,
                "window_s": args.duration,
                "replies": units * 2,
                "units": units,
                "replies_per_s": units * 2 / args.duration,
                "units_per_s": units / args.duration,
                "p50_ms": percentile(latencies, 0.50) * 1000,
                "p90_ms": percentile(latencies, 0.90) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000,
                "p999_ms": percentile(latencies, 0.999) * 1000,
                "errors": errors,
                "bad_replies": 0,
                "setup_failures": setup_failures,
                "setup_errors": setup_errors,
                "setup_s": setup_s,
                "loadgen_cpu_s": cpu,
                "latency_unit": "get_job + submit_reading",
            }
        ),
        flush=True,
    )
    os._exit(0)


if __name__ == "__main__":
    main()
