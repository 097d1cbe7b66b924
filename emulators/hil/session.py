"""One `record` run: the recorder, the proxy in front of the target and the dial-out receiver, started together."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av

from emulators.hil.cassette import Manifest
from emulators.hil.dialout import DialOutReceiver
from emulators.hil.media_capture import CaptureError, capture
from emulators.hil.proxy import RecordingProxy
from emulators.hil.recorder import Recorder
from emulators.hil.redact import Redactor
from emulators.hil.rules import load_rules
from emulators.kit.outbound import EgressPolicy
from emulators.kit.tls import client_ssl_context, ensure_dev_certs, server_ssl_context


class RecordSession:
    def __init__(self, device: str, target: str, manifest: Manifest, redactor: Redactor | None = None, *,
                 egress: EgressPolicy, host: str = "127.0.0.1", port: int = 0, receiver_host: str = "127.0.0.1",
                 receiver_port: int = 0,
                 verify_tls: bool = True, certs_dir: str | Path | None = None,
                 media: list[str] | None = None, media_seconds: float = 5.0,
                 cassette_dir: str | Path | None = None) -> None:
        self.recorder = Recorder(manifest, redactor or Redactor())
        self.media = media or []
        self.media_seconds = media_seconds
        self.cassette_dir = Path(cassette_dir) if cassette_dir else None
        self.media_errors: list[str] = []
        self._captures: list[asyncio.Task[None]] = []
        certs = ensure_dev_certs(certs_dir)
        # The receiver serves the dev certificate (emulators trust the dev CA; a real service needs a public
        # address, see the docs) and forwards trusting the dev CA and the system store.
        self.receiver = DialOutReceiver(self.recorder, load_rules(device).dial_out_fields, host=receiver_host,
                                        port=receiver_port, server_ssl=server_ssl_context(certs),
                                        client_ssl=client_ssl_context(certs.ca), egress=egress)
        # A lab device usually has a self-signed certificate: --insecure; our emulators' is the dev CA's.
        self.proxy = RecordingProxy(target, self.recorder, host=host, port=port, receiver=self.receiver,
                                    ssl_context=client_ssl_context(certs.ca) if verify_tls else False)

    async def start(self) -> None:
        await self.receiver.start()
        try:
            await self.proxy.start()
        except BaseException:
            await self.receiver.aclose()
            raise
        for url in self.media:
            self.capture(url)

    def capture(self, url: str, seconds: float | None = None) -> None:
        """Start capturing an RTSP/RTMP stream now (for --media, or once a request has started the stream)."""
        if self.cassette_dir is None:
            raise ValueError("capturing media needs the cassette directory")
        n = len(self._captures)
        self._captures.append(asyncio.create_task(self._capture(n, url, seconds or self.media_seconds),
                                                  name=f"capture {n}"))

    async def _capture(self, n: int, url: str, seconds: float) -> None:
        assert self.cassette_dir is not None
        index = self.recorder.reserve()
        try:
            exchange = await capture(url, seconds, self.cassette_dir, f"capture-{n}")
        except (CaptureError, OSError, TimeoutError, av.error.FFmpegError) as exc:
            self.media_errors.append(f"{self.recorder.redactor.url(url)}: {exc}")
            return
        assert exchange.media is not None
        for step in exchange.media.get("dialogue", []):  # RTSP URLs may carry user:password
            step["uri"] = self.recorder.redactor.url(step["uri"])
        for transport in exchange.media.get("transport", []):
            transport["track"] = self.recorder.redactor.url(transport["track"])
        self.recorder.complete(index, exchange)

    async def captures_done(self) -> None:
        """Wait for every media capture to finish its N seconds."""
        await asyncio.gather(*self._captures, return_exceptions=True)

    async def aclose(self) -> None:
        for task in self._captures:  # stopped early (Ctrl-C): a partial capture is not kept
            task.cancel()
        await asyncio.gather(*self._captures, return_exceptions=True)
        await self.proxy.aclose()
        await self.receiver.aclose()
