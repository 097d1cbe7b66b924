"""The recording a bot keeps: its tape of meeting scenes, the MP4 made from it, and its signed, expiring links."""

from __future__ import annotations

import av
import pytest

from emulators.recall.mix import MixScene
from emulators.recall.recording import (
    FPS,
    MediaUrlRefused,
    Tape,
    check_media_url,
    encode_mp4,
    media_signature,
    signed_media_url,
)

KEY = b"k" * 32
PATH = "/api/v1/bot/b1/recording.mp4"
ANN = MixScene(((100, "Ann"),), (100, "Ann"), (100,), (100,))
QUIET = MixScene(((100, "Ann"),), (100, "Ann"), (), (100,))


def test_the_tape_answers_the_scene_of_any_moment_and_ignores_marks_after_it_stops() -> None:
    tape = Tape()
    tape.mark(0.0, ANN)
    tape.mark(1.5, QUIET)
    tape.stop(3.0)
    tape.mark(4.0, ANN)
    assert (tape.scene_at(0.0), tape.scene_at(1.49), tape.scene_at(1.5), tape.scene_at(9)) == (ANN, ANN, QUIET, QUIET)
    assert tape.duration_s == 3.0 and len(tape.scenes) == 2


def test_the_mp4_has_h264_video_and_aac_audio_as_long_as_the_recording(tmp_path) -> None:
    tape = Tape()
    tape.mark(0.0, ANN)
    tape.stop(2.0)
    path = tmp_path / "r.mp4"
    path.write_bytes(encode_mp4(tape, 1_700_000_000.0))
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, audio.codec_context.name) == ("h264", "aac")
        assert abs(float(container.duration / av.time_base) - 2.0) < 0.3
        assert sum(1 for _ in container.decode(video=0)) == 2 * FPS


def test_a_signed_link_is_good_until_it_expires() -> None:
    url = signed_media_url(KEY, "http://h", PATH, now=1000.0, ttl_s=60)
    query = dict(part.split("=") for part in url.split("?", 1)[1].split("&"))
    assert query["expires"] == "1060"
    check_media_url(KEY, PATH, query["expires"], query["signature"], now=1060.0)
    with pytest.raises(MediaUrlRefused, match="expired"):
        check_media_url(KEY, PATH, query["expires"], query["signature"], now=1060.5)


@pytest.mark.parametrize(("path", "expires", "signature"), [
    ("/api/v1/bot/other/recording.mp4", "1060", media_signature(KEY, PATH, 1060)),
    (PATH, "9999", media_signature(KEY, PATH, 1060)),
    (PATH, None, media_signature(KEY, PATH, 1060)),
    (PATH, "1060", None),
])
def test_a_link_for_another_bot_or_with_edited_parameters_is_refused(
    path: str, expires: str | None, signature: str | None,
) -> None:
    with pytest.raises(MediaUrlRefused):
        check_media_url(KEY, path, expires, signature, now=0.0)
