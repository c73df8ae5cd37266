"""What checking the API contract costs per call: ``python -m benchmarks.openapi``.

Times, with ``time.perf_counter``, the two checks every ``/api/v1`` call goes through
(``fedoracloud.openapi.validation``) on representative calls, in process and without a
database (the checks read only the request, the response and the document):

* ``openapi_request_check``: the request's parameters and body against the document
  (``POST /api/v1/vms`` with a full body; ``GET /api/v1/vms`` with filters);
* ``openapi_response_check``: the answer against the document (a page of 25 VMs; one host
  with 16 CPUs and 4 NICs);
* ``openapi_document_build``: merging the fragments and checking the whole document, as
  every app start does (cached per process after the first).

Figures are merged into ``benchmarks/results.json``; benchmarks report, they do not assert.
The goal: both checks together well under the 50 ms a list page may take (p95 < 10 ms).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from pyramid.request import Request
from pyramid.response import Response

from fedoracloud import openapi
from fedoracloud.openapi.validation import request_problems, response_problems

from .run import RESULTS, merge_results, percentile

GOAL_MS = 10.0


def _request(path: str, pattern: str, method: str = "GET", body: Any = None) -> Request:
    request = Request.blank(path, method=method)
    if body is not None:
        request.body = json.dumps(body).encode()
        request.content_type = "application/json"
    request.matched_route = SimpleNamespace(pattern=pattern)
    request.matchdict = {}
    return request


def _vm(n: int) -> dict[str, Any]:
    return {
        "id": n,
        "uuid": f"6b8c2f4e-52a1-4a6e-9d3b-{n:012d}",
        "name": f"vm{n:04d}",
        "state": "running",
        "state_reason": None,
        "host": 3,
        "hostname": "node003.cloud.example.org",
        "pool": 12,
        "pool_name": "fedora-vms",
        "vcpus": 2,
        "memory_mib": 2048,
        "created_at": "2026-12-01T10:00:00+00:00",
        "managed": True,
        "allowed_actions": ["shutdown", "poweroff", "suspend", "save", "reboot", "migrate"],
    }


def _host() -> dict[str, Any]:
    return {
        "id": 3,
        "uuid": "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
        "hostname": "node003.cloud.example.org",
        "state": "available",
        "pool": 5,
        "libvirt_uri": "qemu+tls://node003.cloud.example.org/system",
        "arch": "x86_64",
        "hypervisor": "qemu",
        "hypervisor_version": "8.2.0",
        "libvirt_version": "10.0.0",
        "memory_mib": 16384,
        "cpus": 16,
        "cpu_mhz": 2400,
        "load_average": 0.4,
        "last_seen_at": "2026-12-01T10:00:00+00:00",
        "nics": [
            {
                "name": f"eth{i}",
                "mac": f"52:54:00:00:00:0{i}",
                "ip_address": None,
                "prefix_length": None,
                "speed_mbps": 1000,
            }
            for i in range(4)
        ],
        "url": "http://cloud.example.org/api/v1/hosts/3",
        "cpu_list": [
            {
                "index": i,
                "socket": i // 8,
                "core": i % 8,
                "thread": 0,
                "vendor": "Intel",
                "model": "Xeon",
                "speed_mhz": 2400,
            }
            for i in range(16)
        ],
    }


def _time(call: Callable[[], Any], warmup: int, n: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _entry(name: str, target: str, samples: list[float]) -> dict[str, Any]:
    p95 = round(percentile(samples, 95), 3)
    return {
        "name": name,
        "dataset": "in process, no database",
        "p50": round(percentile(samples, 50), 3),
        "p95": p95,
        "unit": "ms",
        "n": len(samples),
        "target": target,
        "min": round(min(samples), 3),
        "max": round(max(samples), 3),
        f"goal_p95_under_{GOAL_MS:g}ms": p95 < GOAL_MS,
    }


def main(argv: list[str] | None = None) -> int:
    """Time the checks, print the figures, merge results.json."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.openapi", description=__doc__)
    parser.add_argument("--iterations", "-n", type=int, default=300)
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    api = openapi.build()
    build_ms = (time.perf_counter() - started) * 1000
    create = _request(
        "/api/v1/vms",
        "/api/v1/vms",
        "POST",
        {
            "name": "web01",
            "pool": 12,
            "vcpus": 2,
            "memory_mib": 2048,
            "disks": [{"size_gib": 20}],
            "nics": [{"network": 3}],
            "boot": {"order": ["network", "hd"]},
        },
    )
    listing = _request("/api/v1/vms?state=running&sort=-name&page=2", "/api/v1/vms")
    page = Response(
        body=json.dumps({"items": [_vm(n) for n in range(25)], "next": None, "total": 25}).encode(),
        content_type="application/json",
    )
    host = Response(body=json.dumps(_host()).encode(), content_type="application/json")
    host_request = _request("/api/v1/hosts/3", "/api/v1/hosts/{host_id}")
    for problems in (
        request_problems(api, create, "/api/v1/vms"),
        request_problems(api, listing, "/api/v1/vms"),
        response_problems(api, listing, page, "/api/v1/vms"),
        response_problems(api, host_request, host, "/api/v1/hosts/{host_id}"),
    ):
        if problems:
            raise RuntimeError(f"the benchmark's calls do not match the document: {problems}")
    n, warmup = args.iterations, 20
    results = [
        _entry(
            "openapi_request_check",
            "POST /api/v1/vms (full body)",
            _time(lambda: request_problems(api, create, "/api/v1/vms"), warmup, n),
        ),
        _entry(
            "openapi_request_check_list",
            "GET /api/v1/vms?state&sort&page",
            _time(lambda: request_problems(api, listing, "/api/v1/vms"), warmup, n),
        ),
        _entry(
            "openapi_response_check",
            "GET /api/v1/vms answer, 25 VMs",
            _time(lambda: response_problems(api, listing, page, "/api/v1/vms"), warmup, n),
        ),
        _entry(
            "openapi_response_check_host",
            "GET /api/v1/hosts/{id} answer, 16 CPUs, 4 NICs",
            _time(
                lambda: response_problems(api, host_request, host, "/api/v1/hosts/{host_id}"),
                warmup,
                n,
            ),
        ),
        {
            "name": "openapi_document_build",
            "dataset": f"{len(api.document['paths'])} paths",
            "p50": round(build_ms, 3),
            "p95": round(build_ms, 3),
            "unit": "ms",
            "n": 1,
            "target": "merge fedoracloud/openapi/*.yaml and check the document (app start)",
        },
    ]
    for entry in results:
        print(f"{entry['name']:32} p50 {entry['p50']:8.2f} ms  p95 {entry['p95']:8.2f} ms")
    merge_results(args.results, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
