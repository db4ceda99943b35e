"""Load generator for the flash-sale benchmark: a separate process, asyncio, raw HTTP/1.1
keep-alive connections (so the client is not the bottleneck).

    python benchmarks/_flash_load.py PLAN.json RESULT.json

PLAN: {"host", "port", "connections", "requests": [[method, path, headers, body|null], ...]}
RESULT: {"elapsed_s", "latencies_ms": [...], "statuses": {...}, "bodies": [[status, body]...]}
(bodies only for 201 responses, to collect acknowledged order ids).

Or, phases over the same connections, one after the other (each one's requests all answered
before the next starts): PLAN {"host", "port", "connections", "server_pid",
"phases": [{"requests": [...]}, ...]}; RESULT {"phases": [RESULT of each, with
"server_cpu_s", the server's CPU seconds during the phase]}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import cpu_seconds, with_children


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value.strip())
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size + 2)
        return status, body
    return status, await reader.readexactly(length) if length else b""


def _encode(host: str, port: int, requests: list) -> list[bytes]:
    encoded = []
    for method, path, headers, body in requests:
        data = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        encoded.append(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    return encoded


async def run(plan: dict) -> dict:
    host, port = plan["host"], plan["port"]
    phases = plan.get("phases") or [{"requests": plan["requests"]}]
    keep = plan.get("keep_bodies", [201])
    server = plan.get("server_pid")
    conns = [await asyncio.open_connection(host, port) for _ in range(plan["connections"])]
    results = []
    try:
        for phase in phases:
            encoded = _encode(host, port, phase["requests"])
            cpu_before = cpu_seconds(with_children(server)) if server else 0.0
            results.append(await _phase(conns, encoded, keep, host, port))
            if server:
                results[-1]["server_cpu_s"] = cpu_seconds(with_children(server)) - cpu_before
    finally:
        for _reader, writer in conns:
            writer.close()
    return {"phases": results} if "phases" in plan else results[0]


async def _phase(conns: list, encoded: list[bytes], keep: list[int], host: str, port: int) -> dict:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(encoded)):
        queue.put_nowait(i)
    latencies: list[float] = [0.0] * len(encoded)
    statuses: dict[str, int] = {}
    bodies: list[tuple[int, str]] = []

    async def worker(c: int) -> None:
        reader, writer = conns[c]
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            for attempt in range(3):
                t0 = time.perf_counter()
                try:
                    writer.write(encoded[i])
                    await writer.drain()
                    status, body = await _read_response(reader)
                    break
                except (ConnectionError, asyncio.IncompleteReadError):
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    if attempt == 2:
                        status, body = 599, b""
            latencies[i] = (time.perf_counter() - t0) * 1000
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status in keep:
                bodies.append((status, body.decode()))
        conns[c] = (reader, writer)

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in range(len(conns))))
    elapsed = time.perf_counter() - started
    return {"elapsed_s": elapsed, "latencies_ms": latencies, "statuses": statuses, "bodies": bodies}


def main() -> None:
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    result = asyncio.run(run(plan))
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
