"""Checks on request bodies, before FastAPI reads them into memory.

Every body these APIs accept is a small JSON object; without a bound, anyone who can reach
the port could make the process buffer an arbitrarily large upload before any token or
certificate check runs. A body declared as another media type gets a 415 that names the
type expected (FastAPI would try to validate it and answer "not an object"); a body without
Content-Type is read as JSON, as FastAPI does.
"""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cqkd.api.errors import error_response

MAX_BODY_BYTES = 256 * 1024
JSON_TYPE = "application/json"


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == JSON_TYPE.encode() or media_type.endswith(b"+json")


class BodySizeLimit:
    """ASGI middleware: 413 for a body over `max_bytes` (declared or actually sent)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._message = f"request body over {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        content_type = headers.get(b"content-type")
        if content_type is not None and scope["method"] == "POST" and not _is_json(content_type):
            await error_response(415, f"the request body must be JSON: Content-Type: {JSON_TYPE}")(
                scope, receive, send
            )
            return
        received = 0

        async def counting_receive() -> Message:
            # Raised inside FastAPI's body reading, which passes HTTPExceptions through.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message)
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(413, self._message)(scope, receive, send)
