"""A TCP relay on 127.0.0.1 that delays every chunk by half a round trip in each direction:
the bench's stand-in for a network with real latency where ``tc netem`` is not available.

Why not netem: in the container this bench was written in, ``ip netns add`` works (we have
CAP_NET_ADMIN) but the kernel has no ``sch_netem`` (``tc qdisc add dev lo root netem delay
10ms`` answers "Specified qdisc kind is unknown") and no modules to load. The relay keeps
the traffic real (TCP on loopback, the real sshd behind it) and adds the delay where netem
would, on the wire: each chunk read on one side is written to the other side RTT/2 after it
was read, in order, without holding back the chunks behind it (a delay line, not a pause per
chunk), so a burst of N chunks costs one RTT/2, not N. Bandwidth is not limited.

Run as ``python bench/delay_relay.py TARGET_HOST TARGET_PORT RTT_MS``: it listens on a free
127.0.0.1 port, prints that port on its first line of stdout, and relays until killed.
"""

from __future__ import annotations

import asyncio
import collections
import sys


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, every chunk written ``delay`` seconds after it was read."""
    loop = asyncio.get_running_loop()
    line: collections.deque[tuple[float, bytes]] = collections.deque()
    ready = asyncio.Event()
    done = False

    async def deliver() -> None:
        while True:
            while not line:
                if done:
                    return
                ready.clear()
                await ready.wait()
            due, data = line.popleft()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            line.append((loop.time() + delay, data))
            ready.set()
    except ConnectionError:
        pass
    finally:
        done = True
        ready.set()
    try:
        await sender
        if writer.can_write_eof():
            writer.write_eof()
    except ConnectionError:
        pass


async def serve(target_host: str, target_port: int, rtt_ms: float) -> None:
    half = rtt_ms / 2000

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pump(client_r, server_w, half), pump(server_r, client_w, half))
        for w in (client_w, server_w):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    host, port, rtt = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    asyncio.run(serve(host, port, rtt))


if __name__ == "__main__":
    main()
