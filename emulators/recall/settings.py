"""RecallSettings: every setting of the recall emulator with its default, allowed values and meaning."""

from __future__ import annotations

from dataclasses import dataclass

from emulators.kit.settings import DeviceSettings, setting

DEV_API_KEY = "recall-dev-key"
# A Svix-format workspace secret (whsec_ + base64 key bytes) for dev runs; printed by `benchtwin up`.
DEV_WEBHOOK_SIGNING_SECRET = "whsec_YmVuY2h0d2luLXJlY2FsbC1kZXYtc2VjcmV0"
# Frame sizes per profile (dossier Q4): participant, participant while a screenshare is on, screenshare.
VIDEO_DIMENSIONS: dict[str, dict[str, tuple[int, int]]] = {
    "seed": {"webcam": (1280, 720), "webcam_while_sharing": (256, 144), "screenshare": (1024, 576)},
    "v1.11": {"webcam": (480, 360), "webcam_while_sharing": (480, 360), "screenshare": (1280, 720)},
    "sample": {"webcam": (640, 360), "webcam_while_sharing": (640, 360), "screenshare": (1280, 720)},
}
PROFILES = tuple(VIDEO_DIMENSIONS)


@dataclass(frozen=True)
class RecallSettings(DeviceSettings):
    device = "recall"

    port: int = setting(9082, doc="REST and control plane", minimum=0, maximum=65535)
    api_key: str = setting(DEV_API_KEY, doc="the accepted key (`Token <key>` or the bare key)")
    # Rate limits per API key and minute (dossier §2.2).
    rate_limits: bool = setting(True, doc="429 with Retry-After beyond the per-minute limits")
    rate_limit_create_per_min: int = setting(
        120, doc="creates per workspace (API key) and minute (current docs: 120; the dossier's 60 is older)", minimum=1)
    rate_limit_list_per_min: int = setting(60, doc="lists per key and minute", minimum=1)
    rate_limit_bot_per_min: int = setting(300, doc="one-bot requests per key and minute", minimum=1)
    page_size: int = setting(50, doc="list page size", minimum=1)
    # Quirks (dossier §5).
    reject_legacy_fields: bool = setting(False, doc="Q1: v1.10 fields are 400, as on the current service")
    strict_layout_validation: bool = setting(
        False, doc="Q5: `video_separate_png` without `gallery_view_v2` is 400 (off: accepted, never sends)")
    strict_endpoint_shape: bool = setting(False, doc="Q6: refuse endpoints nested as `config: {url, events}`")
    quirk_pool_exhausted: bool = setting(False, doc="Q8: ad-hoc creates get 507 (scheduled bots still work)")
    quirk_waf_localhost: bool = setting(False, doc="Q9: an HTML 403 for `localhost` in a payload or a GET with a body")
    extra_status_codes: bool = setting(False, doc="Q10: also emit `recording_permission_allowed`")
    emit_recording_done: bool = setting(False, doc="append `recording_done` before `done`")
    legacy_video_dimensions: str = setting(
        "seed", doc="Q4 size preset of v1.10 video: `seed` (1280x720 / 256x144 / 1024x576), `v1.11` "
        "(480x360 / 480x360 / 1280x720), `sample` (640x360 / 640x360 / 1280x720)", choices=PROFILES)
    realtime_video_dimensions: str = setting("v1.11", doc="Q4 size preset of v1.11 video", choices=PROFILES)
    # Media.
    retry_interval_s: float = setting(3.0, doc="reconnect cadence of every WebSocket sender (vendor: 3 s)",
                                      minimum=0.01)
    audio_chunk_ms: int = setting(100, doc="audio chunk length", minimum=10)
    audio_separate_streams: bool = setting(
        False, doc="legacy audio: one connection per participant with an id prefix")
    png_compression_level: int = setting(1, doc="PNG zlib level (kit `PngEncoder`)", minimum=0, maximum=9)
    encode_threads: int = setting(2, doc="PNG encoding threads", minimum=1)
    rtmp_width: int = setting(1280, doc="RTMP mix width", minimum=128)
    rtmp_height: int = setting(720, doc="RTMP mix height", minimum=64)
    rtmp_fps: int = setting(30, doc="RTMP mix frame rate", minimum=1)
    # Lifecycle.
    leave_delay_s: float = setting(0.5, doc="leave_call to `call_ended`, time-scaled", minimum=0)
    status_webhook_url: str = setting(
        "", doc="status-change webhooks (v1.10 `bot.status_change`, v1.11 `bot.<code>`) go here when set")
    webhook_retry_interval_s: float = setting(15.0, doc="webhook retry interval (5 attempts each)", minimum=0)
    webhook_signing_secret: str = setting(
        DEV_WEBHOOK_SIGNING_SECRET, doc="workspace secret (`whsec_<base64>`) signing status webhooks Svix-style")
    media_url_ttl_s: float = setting(
        21600.0, doc="lifetime of each signed recording link (`video_url`, `video_mixed` download; vendor: 6 h)",
        minimum=1)
    scenario: str = setting("default", doc="scenario for meeting URLs no scenario lists")
