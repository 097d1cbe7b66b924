"""The RTSP `Transport` header (RFC 2326 §12.39): parsing a client's alternatives and formatting
the server's choice."""

from __future__ import annotations

from dataclasses import dataclass, field


class TransportError(ValueError):
    """A Transport header the server cannot use; the text says which parameter and why."""


@dataclass
class TransportSpec:
    profile: str = "RTP/AVP"  # transport/profile, e.g. RTP/AVP
    lower_transport: str = "UDP"  # UDP unless the spec says RTP/AVP/TCP
    unicast: bool = True
    interleaved: tuple[int, int] | None = None
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    ssrc: int | None = None
    mode: str = "PLAY"
    destination: str | None = None
    source: str | None = None
    extra: dict[str, str | None] = field(default_factory=dict)

    def format(self) -> str:
        parts = [self.profile if self.lower_transport == "UDP" else f"{self.profile}/TCP"]
        parts.append("unicast" if self.unicast else "multicast")
        if self.destination:
            parts.append(f"destination={self.destination}")
        if self.source:
            parts.append(f"source={self.source}")
        if self.interleaved is not None:
            parts.append(f"interleaved={self.interleaved[0]}-{self.interleaved[1]}")
        if self.client_port is not None:
            parts.append(f"client_port={self.client_port[0]}-{self.client_port[1]}")
        if self.server_port is not None:
            parts.append(f"server_port={self.server_port[0]}-{self.server_port[1]}")
        if self.ssrc is not None:
            parts.append(f"ssrc={self.ssrc:08X}")
        if self.mode != "PLAY":
            parts.append(f"mode={self.mode.lower()}")
        return ";".join(parts)


def parse_transport(value: str) -> list[TransportSpec]:
    """All comma-separated alternatives, in the client's order of preference."""
    specs = [_parse_one(part.strip()) for part in value.split(",") if part.strip()]
    if not specs:
        raise TransportError("Transport header is empty")
    return specs


def _parse_one(text: str) -> TransportSpec:
    fields = [f.strip() for f in text.split(";") if f.strip()]
    if not fields:
        raise TransportError(f"Transport alternative must start with RTP/AVP[/TCP|/UDP], got {text!r}")
    protocol = fields[0].upper()
    pieces = protocol.split("/")
    if len(pieces) not in (2, 3):
        raise TransportError(f"Transport protocol must be RTP/AVP[/TCP|/UDP], got {fields[0]!r}")
    spec = TransportSpec(profile="/".join(pieces[:2]), lower_transport=pieces[2] if len(pieces) == 3 else "UDP")
    if spec.lower_transport not in ("TCP", "UDP"):
        raise TransportError(f"Transport lower transport must be TCP or UDP, got {pieces[2]!r}")
    for param in fields[1:]:
        name, sep, raw = param.partition("=")
        name = name.strip().lower()
        raw = raw.strip().strip('"')
        if name == "unicast":
            spec.unicast = True
        elif name == "multicast":
            spec.unicast = False
        elif name == "interleaved":
            spec.interleaved = _range(name, raw, upper=255)
        elif name == "client_port":
            spec.client_port = _range(name, raw, upper=65535)
        elif name == "server_port":
            spec.server_port = _range(name, raw, upper=65535)
        elif name == "ssrc":
            try:
                spec.ssrc = int(raw, 16)
            except ValueError:
                raise TransportError(f"Transport ssrc must be 8 hex digits, got {raw!r}") from None
        elif name == "mode":
            spec.mode = raw.upper()
        elif name == "destination":
            spec.destination = raw
        elif name == "source":
            spec.source = raw
        else:
            spec.extra[name] = raw if sep else None
    return spec


def _range(name: str, raw: str, *, upper: int) -> tuple[int, int]:
    """`a-b` or a lone `a` (meaning a-(a+1), as clients send for RTP/RTCP pairs)."""
    low_text, sep, high_text = raw.partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if sep else low + 1
    except ValueError:
        raise TransportError(f"Transport {name} must be N or N-M with 0 <= N <= {upper}, got {raw!r}") from None
    if not (0 <= low <= upper and 0 <= high <= upper):
        raise TransportError(f"Transport {name} must be within 0-{upper}, got {raw!r}")
    return low, high
