# SPDX-License-Identifier: MIT
# The Python peers of bench/echo_bench.cpp: an echo server on asyncio, with
# uvloop's event loop or the standard one, as an asyncio.Protocol (the
# fastest way either offers). Prints "port N" once it listens on 127.0.0.1.
#
#   python3 echo_server.py uvloop|asyncio
import asyncio
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4096)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if sys.argv[1] == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main())
