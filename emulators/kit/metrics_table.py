"""The metrics every emulator exports at ``/metrics``: names, types and help texts (the one definition the docs
table and the collector both read), and the event kinds counted as outbound outcomes."""

from __future__ import annotations

# Event kinds that are outbound connection outcomes (webhooks, dial-outs, pushes), by result.
OUTBOUND_RESULTS = {
    "outbound.connected": "connected",
    "webhook.delivered": "delivered",
    "outbound.retry": "retried",
    "outbound.failed": "failed",
    "webhook.failed": "failed",
    "callback.failed": "failed",
    "webhook.refused": "refused",
}

# (name, type, help) of every metric, the one definition the docs table is generated from.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("benchtwin_http_requests_total", "counter", "HTTP requests answered, by method, route template and status"),
    ("benchtwin_streams", "gauge", "streams running now, by stream name (the names fault rules match)"),
    ("benchtwin_stream_ticks_total", "counter", "frames, chunks or messages paced out, by stream"),
    ("benchtwin_stream_skipped_ticks_total", "counter", "ticks skipped because the sender fell a period behind"),
    ("benchtwin_stream_send_lateness_seconds", "gauge",
     "send lateness after each tick's deadline over the recent window (quantiles 0.5, 0.99), by stream"),
    ("benchtwin_faults_applied_total", "counter", "fault rules that fired, by action"),
    ("benchtwin_faults_active", "gauge", "fault rules in force"),
    ("benchtwin_events_total", "counter", "events recorded, by kind"),
    ("benchtwin_outbound_total", "counter",
     "outbound connection outcomes (webhooks, dial-outs, pushes), by result: connected, delivered, retried, "
     "failed, refused"),
    ("benchtwin_egress_checks_total", "counter", "addresses checked against the egress allowlist, by verdict"),
    ("benchtwin_workers", "gauge", "media worker processes alive"),
    ("benchtwin_tasks", "gauge", "asyncio tasks owned by the emulator"),
    ("rtsp_sessions", "gauge", "RTSP sessions playing, by transport (tcp, udp)"),
    ("rtsp_sessions_rtp_packets_sent", "counter", "RTP packets sent to RTSP sessions playing now, by transport"),
    ("rtsp_sessions_bytes_sent", "counter", "RTP payload bytes sent to RTSP sessions playing now, by transport"),
)


def help_text(name: str) -> str:
    return next(text for metric, _, text in METRICS if metric == name)
