"""The HTTP floor under kernelshim's request path, for ``python -m benchmarks.http_floor``.

``app`` is the cheapest ASGI application uvicorn can serve: it reads the body and answers a
constant v2-shaped response, so uvicorn (httptools, uvloop, same options as ``shim serve``) plus
loopback plus wrk is all that is measured. ``python floor_app.py PORT`` serves the same constant
from a bare asyncio protocol on httptools (no ASGI layer), the floor below uvicorn.
"""

from __future__ import annotations

import asyncio
import sys

BODY = (
    b'{"model_name":"mlp","model_version":"0.1.0","outputs":[{"name":"probabilities",'
    b'"datatype":"FP32","shape":[1,4],"data":[0.1,0.2,0.3,0.4]}]}'
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY) + BODY
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    more_body = True
    while more_body:
        more_body = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


class _ConstantProtocol(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        import httptools

        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.transport.write(RESPONSE)


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_ConstantProtocol, "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(_serve(int(sys.argv[1])))
