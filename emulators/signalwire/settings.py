"""The SignalWire emulator's settings: defaults, allowed values and meaning of each, quirk flags included."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from clients.signalwire_media import STREAM_CODECS
from emulators.kit.errors import FieldError
from emulators.kit.settings import DeviceSettings, setting
from emulators.signalwire.model import CALL_SID_MODES


@dataclass(frozen=True)
class SignalWireSettings(DeviceSettings):
    device: ClassVar[str] = "signalwire"

    port: int = setting(9083, doc="plain HTTP listener of the API and control plane (tests, curl); "
                        "the official SDK only speaks HTTPS", minimum=0, maximum=65535)
    tls_port: int = setting(9443, doc="HTTPS listener of the same API, with the dev certificate",
                            minimum=0, maximum=65535)
    scenario: str = setting("default", doc="`fixtures/scenarios/signalwire/<name>.yaml`, or a path to a YAML file")
    ca_bundle: str = setting("", doc="PEM file the outbound wss/https trust instead of dev CA + system store")
    tls_insecure: bool = setting(False, doc="tests only: do not verify the receiver's certificate (quirk 10)")
    allow_ws_scheme: bool = setting(False, doc="tests only: accept `ws://` stream URLs (quirk 11)")
    async_validation_errors: bool = setting(False, doc="invalid creates answer 200 `queued`, then `stream-error` "
                                            "(quirk 5)")
    disabled_codecs: tuple[str, ...] = setting((), doc="StreamCodec values \"not enabled for your account\": "
                                               f"422 / `codec_error` (quirk 6); any of {', '.join(STREAM_CODECS)}")
    l16_byte_order: str = setting("big", doc="`little` for FreeSWITCH-style pipelines (quirk 7)",
                                  choices=("big", "little"))
    pcma_encoding: str = setting("audio/x-alaw", doc="the `encoding` string announced for PCMA (quirk 8)")
    plain_l16_rate: int = setting(16000, doc="sample rate of bare `L16` (quirk 9)", choices=(16000, 24000))
    always_custom_parameters: bool = setting(False, doc="send `customParameters: {}` when there are none (quirk 3)")
    omit_streamsid_in_dtmf_mark: bool = setting(False, doc="leave `streamSid` out of `dtmf` and `mark` (quirk 4)")
    strict_stream_sid: bool = setting(False, doc="refuse a `Name` in place of the stream sid (quirk 18)")
    conference_call_sid: str = setting("conference", doc="what `start.callSid` carries (quirk 19)",
                                       choices=CALL_SID_MODES)
    pilot: bool = setting(True, doc="the continuity pilot tone on the first chunk of every second")
    media_speedup: float = setting(1.0, doc="tests only: run the 20 ms clock faster (timestamps stay nominal)",
                                   minimum=0.1, maximum=100)
    max_streams_per_conference: int = setting(0, doc="0 = unlimited; over the limit a create is 422", minimum=0)
    status_callback_attempts: int = setting(3, doc="StatusCallback delivery attempts (connection errors, 5xx)",
                                            minimum=1, maximum=20)
    status_callback_retry_s: float = setting(0.5, doc="seconds between StatusCallback attempts", minimum=0)
    resolve: dict[str, str] = setting({}, doc="`{\"host[:port]\": \"ip:port\"}`: where a stream URL's host really "
                                      "connects (Host and SNI unchanged), like curl --resolve")
    rate_limit: int = setting(0, doc="requests per second per account before 429 `{code: 20429, ...}` with "
                              "`Retry-After: 1` (quirk 17; 0 = none)", minimum=0)

    def validate(self) -> None:
        super().validate()
        if any(codec not in STREAM_CODECS for codec in self.disabled_codecs):
            raise FieldError("signalwire.disabled_codecs", f"must be a list of {', '.join(STREAM_CODECS)}")
        if any(not isinstance(v, str) or not _is_port(v.rpartition(":")[2]) for v in self.resolve.values()):
            raise FieldError("signalwire.resolve", "must map host[:port] to 'ip:port'")


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit()
