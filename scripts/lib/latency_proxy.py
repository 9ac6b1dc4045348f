"""A TCP proxy that adds network latency per HTTP request, for scripts/bench-e2e.

    latency_proxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT GET_MS PUT_MS OTHER_MS

Each request on a connection (HTTP/1.1, keep-alive) is held for the latency of its method
before it is forwarded: GET (and HEAD) requests wait GET_MS, PUT and POST PUT_MS, the rest
OTHER_MS. That is the time to first byte an S3 or DynamoDB client sees in a region, where
the loopback servers answer in microseconds. Responses are relayed as they come. Request
bodies are framed by Content-Length or chunked transfer coding, so the next request on the
connection is found and delayed too. Prints "listening PORT" once ready.
"""

import asyncio
import sys


async def relay(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def read_chunked(reader, out):
    while True:
        line = await reader.readline()
        out.append(line)
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            # Trailers, up to the empty line.
            while True:
                trailer = await reader.readline()
                out.append(trailer)
                if trailer in (b"\r\n", b"\n", b""):
                    return
        out.append(await reader.readexactly(size + 2))


async def requests(reader, writer, delays):
    """Forwards request after request, each after its method's delay."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method = head.split(b" ", 1)[0].upper()
            delay = delays.get(method, delays[b"*"])
            headers = {}
            for line in head.split(b"\r\n")[1:]:
                if b":" in line:
                    name, value = line.split(b":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = []
            if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                await read_chunked(reader, body)
            elif b"content-length" in headers:
                length = int(headers[b"content-length"])
                if length:
                    body.append(await reader.readexactly(length))
            await asyncio.sleep(delay)
            writer.write(head + b"".join(body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


def main():
    listen, target, get_ms, put_ms, other_ms = sys.argv[1:6]
    host, port = target.rsplit(":", 1)
    delays = {
        b"GET": int(get_ms) / 1000,
        b"HEAD": int(get_ms) / 1000,
        b"PUT": int(put_ms) / 1000,
        b"POST": int(put_ms) / 1000,
        b"*": int(other_ms) / 1000,
    }

    async def handle(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            requests(client_reader, upstream_writer, delays),
            relay(upstream_reader, client_writer),
        )

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", int(listen), limit=1 << 20)
        print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
