"""HTTP fault injection: the middleware that answers, delays or drops a request when a path rule fires."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web
from aiohttp.typedefs import Middleware

from emulators.kit.events import EventLog
from emulators.kit.faults import DelayAction, FaultBook, ResetAction, StatusAction
from emulators.kit.http import Handler

# SO_LINGER on with a timeout of 0: close() sends RST instead of FIN.
_LINGER_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"


def fault_middleware(faults: FaultBook, events: EventLog, *, exempt_prefix: str | tuple[str, ...]) -> Middleware:
    """Consults ``faults`` for every request outside ``exempt_prefix`` (the control plane and /metrics are never
    faulted)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(exempt_prefix) or not len(faults):
            return await handler(request)
        rule = faults.for_request(request.method, request.path)
        if rule is None:
            return await handler(request)
        action = rule.action
        events.record("fault.applied", rule=rule.id, action=action.type, method=request.method, path=request.path)
        match action:
            case DelayAction():
                await asyncio.sleep(faults.delay_seconds(action))
                return await handler(request)
            case StatusAction(status=status, body=body, headers=headers):
                if isinstance(body, dict | list):
                    return web.json_response(body, status=status, headers=headers)
                return web.Response(status=status, text="" if body is None else str(body), headers=headers)
        transport = request.transport
        if transport is not None:
            if isinstance(action, ResetAction):
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            transport.close()
        raise asyncio.CancelledError  # no response at all: the connection is gone

    return middleware
