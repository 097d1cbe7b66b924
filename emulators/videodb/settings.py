"""The VideoDB emulator's settings: one frozen dataclass whose field metadata holds each setting's rules."""

from __future__ import annotations

from dataclasses import dataclass

from emulators.kit.errors import FieldError
from emulators.kit.settings import DeviceSettings, setting


@dataclass(frozen=True)
class VideoDBSettings(DeviceSettings):
    device = "videodb"

    port: int = setting(9084, doc="REST/WebSocket/HLS port", minimum=0, maximum=65535)
    api_key: str = setting("sk-benchtwin-videodb-dev", doc="the accepted `x-access-token`")
    data_dir: str = setting(
        "",
        doc="where recordings and state live; empty = a temporary directory removed at shutdown. With a "
        "directory, the account survives a restart (streams that were live resume into a new recording)",
    )
    public_base_url: str = setting("", doc="base of generated URLs; empty = the request's Host")
    segment_s: float = setting(2.0, doc="minimum HLS segment length (cut at the next keyframe)", minimum=0.1)
    open_timeout_s: float = setting(5.0, doc="PyAV open timeout on the source", minimum=0.1)
    read_timeout_s: float = setting(3.0, doc="PyAV read timeout on the source", minimum=0.1)
    reconnect_initial_s: float = setting(1.0, doc="first reconnect delay (doubles per failed attempt)", minimum=0.01)
    reconnect_max_s: float = setting(
        2.0, doc="longest reconnect delay: a source that comes back records again within about this long",
        minimum=0.01,
    )
    error_after_s: float = setting(10.0, doc="outage length after which the status reads `error`", minimum=0)
    rolling_window_s: float = setting(120.0, doc="kept history for `store=false` streams", minimum=0)
    webhook_attempts: int = setting(3, doc="alert webhook attempts (connection errors and 5xx retry)", minimum=1)
    webhook_retry_interval_s: float = setting(1.0, doc="pause between alert webhook attempts", minimum=0)
    credits_limit: int = setting(0, doc=">0: creating more streams than this answers 402", minimum=0)
    extraction_config_native: bool = setting(
        False, doc="return index configs with native types instead of the service's strings"
    )
    webhook_times_as_seconds: bool = setting(
        False, doc="webhook `start_time`/`end_time` as float seconds (as the docs say) instead of ISO (as the "
        "service sends)"
    )
    visual_index_channel: bool = setting(False, doc="send visual records on `visual_index` instead of `scene_index`")
    scene_record_text_alias: bool = setting(False, doc="add `text` next to `description` in scene records")
    rtstream_search_empty_list: bool = setting(
        False, doc="an empty search answers `{\"results\": []}` instead of 400 `No results found.`"
    )
    no_error_status: bool = setting(
        False, doc="never report `error` (the vendor OpenAPI enum has only connected/stopped)"
    )

    def validate(self) -> None:
        super().validate()
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise FieldError(
                self._name("reconnect_max_s"),
                f"must be at least reconnect_initial_s ({self.reconnect_initial_s}), got {self.reconnect_max_s}",
            )
