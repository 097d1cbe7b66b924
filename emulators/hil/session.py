"""One `record` run: the recorder, the proxy in front of the target and the dial-out receiver, started together."""

from __future__ import annotations

from pathlib import Path

from emulators.hil.cassette import Manifest
from emulators.hil.dialout import DialOutReceiver
from emulators.hil.proxy import RecordingProxy
from emulators.hil.recorder import Recorder
from emulators.hil.redact import Redactor
from emulators.hil.rules import load_rules
from emulators.kit.outbound import EgressPolicy
from emulators.kit.tls import client_ssl_context, ensure_dev_certs, server_ssl_context


class RecordSession:
    def __init__(self, device: str, target: str, manifest: Manifest, redactor: Redactor | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, receiver_host: str = "127.0.0.1", receiver_port: int = 0,
                 verify_tls: bool = True, certs_dir: str | Path | None = None,
                 egress: EgressPolicy | None = None) -> None:
        self.recorder = Recorder(manifest, redactor or Redactor())
        certs = ensure_dev_certs(certs_dir)
        # The receiver serves the dev certificate (emulators trust the dev CA; a real service needs a public
        # address, see the docs) and forwards trusting the dev CA and the system store.
        self.receiver = DialOutReceiver(self.recorder, load_rules(device).dial_out_fields, host=receiver_host,
                                        port=receiver_port, server_ssl=server_ssl_context(certs),
                                        client_ssl=client_ssl_context(certs.ca), egress=egress)
        self.proxy = RecordingProxy(target, self.recorder, host=host, port=port, receiver=self.receiver,
                                    verify_tls=verify_tls)

    async def start(self) -> None:
        await self.receiver.start()
        try:
            await self.proxy.start()
        except BaseException:
            await self.receiver.aclose()
            raise

    async def aclose(self) -> None:
        await self.proxy.aclose()
        await self.receiver.aclose()

    async def __aenter__(self) -> RecordSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
