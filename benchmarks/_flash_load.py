"""Load generator for the flash-sale benchmark: a separate process, asyncio, raw HTTP/1.1
keep-alive connections (so the client is not the bottleneck).

    python benchmarks/_flash_load.py PLAN.json RESULT.json

PLAN: {"host", "port", "connections", "requests": [[method, path, headers, body|null], ...]}
RESULT: {"elapsed_s", "latencies_ms": [...], "statuses": {...}, "bodies": [[status, body]...]}
(bodies only for 201 responses, to collect acknowledged order ids).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


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


async def run(plan: dict) -> dict:
    host, port = plan["host"], plan["port"]
    queue: asyncio.Queue[int] = asyncio.Queue()
    requests = plan["requests"]
    encoded = []
    for method, path, headers, body in requests:
        data = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        encoded.append(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    for i in range(len(encoded)):
        queue.put_nowait(i)
    latencies: list[float] = [0.0] * len(encoded)
    statuses: dict[str, int] = {}
    bodies: list[tuple[int, str]] = []
    keep = plan.get("keep_bodies", [201])

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
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
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(plan["connections"])))
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
