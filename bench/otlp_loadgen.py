"""Load generator process: POSTs OTLP/HTTP protobuf batches of unique spans, prints ack latencies as JSON.

python bench/otlp_loadgen.py --url http://127.0.0.1:4318/v1/traces --requests 400 --spans 512 --connections 4

Several ``--url`` spread the connections over several collectors (connection i sends to URL i mod n), as a
load-balancing exporter in front of them would.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
import urllib.parse

from _common import RequestFactory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, action="append", help="repeat for several collectors")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    urls = [urllib.parse.urlsplit(u) for u in args.url]
    factory = RequestFactory(args.spans, seed=args.seed)
    # bodies prepared before the clock starts: the measurement is the collector, not the generator
    bodies = [factory.next()[0] for _ in range(args.requests)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    next_index = iter(range(args.requests))

    def worker(number: int) -> None:
        url = urls[number % len(urls)]
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        for index in next_index:
            body = bodies[index]
            while True:
                started = time.perf_counter()
                conn.request("POST", url.path, body=body, headers={"Content-Type": "application/x-protobuf"})
                response = conn.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status == 200:
                    with lock:
                        latencies.append(elapsed)
                    break
                time.sleep(float(response.headers.get("Retry-After", "1")))
        conn.close()

    started = time.time()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"started": started, "finished": time.time(), "latencies": latencies, "statuses": statuses}))


if __name__ == "__main__":
    main()
