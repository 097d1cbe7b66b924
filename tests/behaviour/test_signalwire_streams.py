"""Behaviour of SignalWire conference streams: validation, codecs, pacing, tracks, callbacks, bidirectional media."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from signalwire_helpers import ADA, CONFERENCE, WAITING_CONFERENCE, rig

from clients.g711 import pcm16_to_ulaw
from clients.signalwire import Dtmf, Mark, Media, MediaStreamReceiver, SignalWireRestError, Stop
from emulators.kit.tls import ensure_dev_certs
from emulators.signalwire.audio import detect_pilot

# The receiver serves the dev server certificate, as `benchtwin certs` makes it.
_DEV_CERTS = ensure_dev_certs()
RECEIVER_TLS = {"certfile": _DEV_CERTS.cert, "keyfile": _DEV_CERTS.key}

pytestmark = pytest.mark.control_plane


async def test_ws_scheme_and_query_string_urls_are_rejected_with_422_naming_the_problem():
    async with rig() as r:
        with pytest.raises(SignalWireRestError) as ws:
            await r.client.start_stream(CONFERENCE, Url="ws://127.0.0.1:9/audio")
        assert ws.value.status == 422
        assert any("wss" in e for e in ws.value.body["errors"])
        with pytest.raises(SignalWireRestError) as query:
            await r.client.start_stream(CONFERENCE, Url="wss://127.0.0.1:9/audio?user=1")
        assert query.value.status == 422
        assert any("query string" in e for e in query.value.body["errors"])
        with pytest.raises(SignalWireRestError) as missing:
            await r.client.start_stream(CONFERENCE, Track="sideways")
        assert missing.value.status == 422
        assert len(missing.value.body["errors"]) == 2  # Url missing and Track invalid, one string each
        assert r.receiver.connection_attempts == 0


@pytest.mark.parametrize(
    ("codec", "encoding", "rate", "size"),
    [
        ("PCMU", "audio/x-mulaw", 8000, 160),
        ("PCMA", "audio/x-alaw", 8000, 160),
        ("L16", "audio/x-L16", 16000, 640),
        ("L16@16000h", "audio/x-L16", 16000, 640),
        ("L16@24000h", "audio/x-L16", 24000, 960),
    ],
)
async def test_each_codec_announces_its_rate_and_sends_20_ms_payloads_of_the_right_size(codec, encoding, rate, size):
    async with rig() as r:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, StreamCodec=codec, Track="inbound_track")
        stream = await r.receiver.next_stream()
        media = await stream.wait_media(5)
        start = stream.start
        assert start is not None and (start.encoding, start.sample_rate, start.channels) == (encoding, rate, 1)
        assert {len(m.payload) for m in media[:5]} == {size}


async def test_media_arrives_every_20_ms_by_absolute_deadlines_without_gaps():
    async with rig() as r:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Track="inbound_track")
        stream = await r.receiver.next_stream()
        await stream.wait_media(100, timeout_s=6)
        cadence = stream.cadence("inbound", skip=5)
        # Generous bounds: the machine is shared; the tight p99 figure belongs to the benchmark.
        assert 17.0 <= cadence.mean_interval_ms <= 23.0
        assert cadence.p99_jitter_ms < 60.0
        assert stream.missing_chunks("inbound") == []
        timestamps = [m.timestamp for m in stream.media("inbound")]
        assert timestamps[:100] == [20 * i for i in range(100)]


async def test_both_tracks_send_inbound_then_outbound_per_tick_with_shared_chunk_and_timestamp():
    async with rig() as r:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url)  # Track defaults to both_tracks
        stream = await r.receiver.next_stream()
        await stream.wait_media(20)
        assert stream.start is not None and stream.start.tracks == ("inbound", "outbound")
        media = [m for m in stream.messages if isinstance(m, Media)][:20]
        for i in range(0, 20, 2):
            inbound, outbound = media[i], media[i + 1]
            assert (inbound.track, outbound.track) == ("inbound", "outbound")
            assert inbound.chunk == outbound.chunk == i // 2 + 1
            assert inbound.timestamp == outbound.timestamp == i // 2 * 20
        assert [m.sequence_number for m in media] == list(range(2, 22))


async def test_the_first_two_frames_are_connected_then_start_with_string_counters():
    async with rig() as r:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url)
        stream = await r.receiver.next_stream()
        await stream.wait_media(2)
        assert stream.raw[0] == '{"event":"connected","protocol":"Call","version":"0.2.0"}'
        assert '"sequenceNumber":"1"' in stream.raw[1] and '"event":"start"' in stream.raw[1]
        assert '"chunk":"1"' in stream.raw[2] and '"timestamp":"0"' in stream.raw[2]
        assert "customParameters" not in stream.raw[1]  # omitted when none were given (quirk 3)
        assert stream.bearer_token is None and "Authorization" not in stream.headers


async def test_custom_parameters_and_the_bearer_token_arrive_at_the_receiver():
    async with rig() as r:
        fields = {f"Parameter{i}.Name": f"key{i}" for i in range(1, 100)}
        fields.update({f"Parameter{i}.Value": f"value{i}" for i in range(1, 100)})
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, AuthorizationBearerToken="s3cret", **fields)
        stream = await r.receiver.next_stream()
        await stream.wait_media(1)
        assert stream.bearer_token == "s3cret"
        assert stream.custom_parameters == {f"key{i}": f"value{i}" for i in range(1, 100)}


async def test_ending_the_conference_sends_stop_closes_1000_and_posts_stream_stopped():
    async with rig() as r:
        created = await r.client.start_stream(CONFERENCE, Url=r.receiver.url, StatusCallback=r.callbacks.url,
                                              Name="minutes")
        stream = await r.receiver.next_stream()
        await stream.wait_media(4)
        await r.callbacks.wait_for("stream-started", created["sid"])
        conference = await r.client.update(CONFERENCE, Status="completed")
        assert conference["status"] == "completed"
        assert await stream.wait_closed() == 1000
        assert isinstance(stream.messages[-1], Stop)
        assert stream.sequence_gaps() == []
        stopped = await r.callbacks.wait_for("stream-stopped", created["sid"])
        assert stopped["method"] == "POST" and stopped["content_type"] == "application/x-www-form-urlencoded"
        fields = stopped["fields"]
        assert fields["ConferenceSid"] == CONFERENCE and fields["CallSid"] == CONFERENCE
        assert fields["StreamName"] == "minutes" and fields["StreamTrack"] == "both_tracks"
        assert fields["Unique-ID"] == CONFERENCE and "StreamError" not in fields
        dt.datetime.strptime(fields["Timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert r.callbacks.events(created["sid"]) == ["stream-started", "stream-stopped"]
        with pytest.raises(SignalWireRestError) as late:
            await r.client.start_stream(CONFERENCE, Url=r.receiver.url)
        assert late.value.status == 422


async def test_a_refused_connection_sends_stream_error_connection_refused_by_get():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    async with rig() as r:
        created = await r.client.start_stream(CONFERENCE, Url=f"wss://127.0.0.1:{closed_port}/audio",
                                              StatusCallback=r.callbacks.url, StatusCallbackMethod="GET")
        assert created["status"] == "queued" and created["name"] is None
        error = await r.callbacks.wait_for("stream-error", created["sid"])
        assert error["method"] == "GET"
        assert error["fields"]["StreamError"] == "connection_refused"
        assert error["fields"]["StreamName"] == created["sid"]  # defaults to the sid
        await asyncio.sleep(0)  # let the stream task finish its bookkeeping
        assert r.callbacks.events(created["sid"]) == ["stream-error"]


async def test_a_403_on_upgrade_is_connection_refused():
    async with rig() as r, MediaStreamReceiver(**RECEIVER_TLS, reject_status=403) as refusing:
        created = await r.client.start_stream(CONFERENCE, Url=refusing.url, StatusCallback=r.callbacks.url)
        error = await r.callbacks.wait_for("stream-error", created["sid"])
        assert error["fields"]["StreamError"] == "connection_refused"


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "rogue.pem", tmp_path / "rogue-key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


async def test_an_untrusted_certificate_is_a_tls_stream_error_unless_insecure(tmp_path):
    certfile, keyfile = _self_signed(tmp_path)
    async with rig() as r, MediaStreamReceiver(certfile=certfile, keyfile=keyfile) as rogue:
        created = await r.client.start_stream(CONFERENCE, Url=rogue.url, StatusCallback=r.callbacks.url)
        error = await r.callbacks.wait_for("stream-error", created["sid"])
        assert error["fields"]["StreamError"] == "connection_refused_timeout_or_ssl_error"
    async with rig({"tls_insecure": True}) as r, MediaStreamReceiver(certfile=certfile, keyfile=keyfile) as rogue:
        await r.client.start_stream(CONFERENCE, Url=rogue.url)
        stream = await rogue.next_stream()
        await stream.wait_media(1)


async def test_a_duplicate_name_is_accepted_then_reported_as_duplicated_stream_name():
    async with rig() as r:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Name="notes")
        await (await r.receiver.next_stream()).wait_media(1)
        second = await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Name="notes",
                                             StatusCallback=r.callbacks.url)
        assert second["status"] == "queued"
        error = await r.callbacks.wait_for("stream-error", second["sid"])
        assert error["fields"]["StreamError"] == "Duplicated stream name"
        assert len(r.receiver.streams) == 1


async def test_stop_by_name_is_synchronous_idempotent_and_only_accepts_stopped():
    async with rig(body_encoding="json") as r:
        created = await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Name="by-name")
        stream = await r.receiver.next_stream()
        await stream.wait_media(2)
        with pytest.raises(SignalWireRestError) as started:
            await r.client.stop_stream(CONFERENCE, created["sid"], Status="started")
        assert started.value.status == 422 and "errors" in started.value.body
        stopped = await r.client.stop_stream(CONFERENCE, "by-name")
        assert stopped["status"] == "stopped" and stopped["sid"] == created["sid"]
        assert await stream.wait_closed() == 1000
        assert isinstance(stream.messages[-1], Stop)
        again = await r.client.stop_stream(CONFERENCE, created["sid"])
        assert again["status"] == "stopped"


async def test_a_stream_waits_for_an_init_conference_and_connects_when_someone_joins():
    async with rig() as r:
        created = await r.client.start_stream(WAITING_CONFERENCE, Url=r.receiver.url, Track="inbound_track")
        await asyncio.sleep(0.3)  # give it the chance to connect early (it must not)
        assert r.receiver.connection_attempts == 0
        await r.emulator.scenario_controls["add_participant"](
            {"conference_sid": WAITING_CONFERENCE, "name": "Joan", "speaking": [[0, 60000]]}
        )
        stream = await r.receiver.next_stream()
        await stream.wait_media(3)
        assert (await r.client.get(WAITING_CONFERENCE))["status"] == "in-progress"
        assert r.emulator.backend.conferences[WAITING_CONFERENCE].streams[created["sid"]].status == "in-progress"


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_the_inbound_track_decodes_to_the_speakers_voice_with_a_pilot_each_second(codec):
    audioop = pytest.importorskip("audioop", reason="an independent G.711 decoder (stdlib audioop, Python < 3.13)")
    async with rig() as r:
        await r.emulator.scenario_controls["set_speaker"]({"conference_sid": CONFERENCE, "call_sid": ADA})
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Track="inbound_track", StreamCodec=codec)
        stream = await r.receiver.next_stream()
        media = await stream.wait_media(52, timeout_s=6)
        ours = stream.audio("inbound")
        to_linear = audioop.ulaw2lin if codec == "PCMU" else audioop.alaw2lin
        independent = np.frombuffer(to_linear(b"".join(m.payload for m in media), 2), dtype=np.int16)
        assert np.array_equal(ours[: len(independent)], independent)
        assert detect_pilot(ours[:160], 8000) == 0  # chunk 1 carries symbol (1 // 50) % 16
        assert detect_pilot(ours[50 * 160 : 51 * 160], 8000) == 1  # chunk 51
        voice = ours[160 : 50 * 160].astype(np.float64)
        assert np.sqrt(np.mean(voice**2)) > 300  # Ada is speaking: clearly not silence


async def test_customer_media_plays_on_the_outbound_track_and_marks_echo_after_it():
    async with rig({"pilot": False}) as r:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Track="outbound_track")
        stream = await r.receiver.next_stream()
        await stream.wait_media(1)
        await stream.send_mark("before-audio")  # nothing queued: echoed at once
        await stream.wait_until(lambda s: len(s.of_type(Mark)) == 1)
        tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)).astype(np.int16)  # 100 ms
        await stream.send_media(pcm16_to_ulaw(tone))
        await stream.send_mark("after-audio")
        await stream.wait_until(lambda s: len(s.of_type(Mark)) == 2, timeout_s=3)
        mark_index = next(i for i, m in enumerate(stream.messages) if isinstance(m, Mark) and m.name == "after-audio")
        played = b"".join(m.payload for m in stream.messages[:mark_index] if isinstance(m, Media))
        assert pcm16_to_ulaw(tone) in played  # byte-exact, in order, before the mark
        assert stream.of_type(Mark)[1].stream_sid == stream.stream_sid


async def test_clear_flushes_queued_customer_audio_and_echoes_pending_marks():
    async with rig({"pilot": False}) as r:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Track="outbound_track")
        stream = await r.receiver.next_stream()
        await stream.wait_media(1)
        await stream.send_media(b"\x10" * 8000)  # one second of audio
        await stream.send_mark("pending")
        await stream.send_clear()
        await stream.wait_until(lambda s: len(s.of_type(Mark)) == 1, timeout_s=2)
        assert r.emulator.sessions[stream.stream_sid].playout.queued == 0


async def test_scenario_dtmf_and_a_customers_key_press_reach_the_other_streams():
    async with rig() as r, MediaStreamReceiver(**RECEIVER_TLS) as second:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Track="inbound_track")
        await r.client.start_stream(CONFERENCE, Url=second.url, Track="inbound_track")
        one, two = await r.receiver.next_stream(), await second.next_stream()
        await one.wait_media(1)
        await two.wait_media(1)
        await r.emulator.scenario_controls["press_dtmf"]({"conference_sid": CONFERENCE, "digit": "7"})
        await one.wait_until(lambda s: bool(s.of_type(Dtmf)))
        dtmf = one.of_type(Dtmf)[0]
        assert (dtmf.digit, dtmf.duration, dtmf.stream_sid) == ("7", 200, one.stream_sid)
        await one.send_dtmf("#")
        await two.wait_until(lambda s: any(d.digit == "#" for d in s.of_type(Dtmf)))
        assert one.sequence_gaps() == []


async def test_stream_faults_drop_chunks_and_close_with_the_given_code():
    async with rig() as r:
        created = await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Track="inbound_track",
                                              StatusCallback=r.callbacks.url)
        stream = await r.receiver.next_stream()
        await stream.wait_media(3)
        r.emulator.faults.add({"match": {"stream": f"{CONFERENCE}/*"}, "action": {"type": "drop"}, "count": 2})
        await stream.wait_media(10)
        assert len(stream.missing_chunks("inbound")) == 2
        assert len(stream.sequence_gaps()) == 2
        r.emulator.faults.add({"match": {"stream": f"{CONFERENCE}/{created['sid']}"},
                               "action": {"type": "close", "code": 4001}, "count": 1})
        assert await stream.wait_closed() == 4001
        error = await r.callbacks.wait_for("stream-error", created["sid"])
        assert error["fields"]["StreamError"] == "general_error"


async def test_a_corrupt_fault_damages_payload_bytes_but_not_the_message():
    async with rig({"scenario": "quiet-room", "pilot": False}) as r:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Track="inbound_track")
        stream = await r.receiver.next_stream()
        await stream.wait_media(2)
        assert all(set(m.payload) == {0xFF} for m in stream.media("inbound"))  # nobody speaks: µ-law silence
        r.emulator.faults.add({"match": {"stream": "*"}, "action": {"type": "corrupt"}, "count": 3})
        media = await stream.wait_media(10)
        damaged = [m for m in media if set(m.payload) != {0xFF}]
        assert len(damaged) == 3 and all(len(m.payload) == 160 for m in damaged)
        assert stream.missing_chunks("inbound") == []


async def test_a_client_closing_the_socket_stops_the_stream_and_releases_its_tasks():
    async with rig() as r:
        baseline = r.emulator.tasks.live
        created = await r.client.start_stream(CONFERENCE, Url=r.receiver.url, StatusCallback=r.callbacks.url)
        task = r.emulator._session_tasks[created["sid"]]
        stream = await r.receiver.next_stream()
        await stream.wait_media(2)
        await stream.close()
        await r.callbacks.wait_for("stream-stopped", created["sid"])
        async with asyncio.timeout(3):
            await asyncio.wait({task})
        assert r.emulator.tasks.live == baseline and created["sid"] not in r.emulator.sessions
        assert r.emulator.backend.conferences[CONFERENCE].streams[created["sid"]].status == "stopped"


async def test_status_callbacks_are_retried_after_a_5xx():
    async with rig({"status_callback_retry_s": 0.05}) as r:
        r.callbacks.fail_next = 2
        created = await r.client.start_stream(CONFERENCE, Url=r.receiver.url, StatusCallback=r.callbacks.url)
        await r.callbacks.wait_for("stream-started", created["sid"])
        assert r.callbacks.failed == 2


async def test_async_validation_errors_quirk_answers_queued_then_reports_invalid_url():
    async with rig({"async_validation_errors": True}) as r:
        created = await r.client.start_stream(CONFERENCE, Url="ws://127.0.0.1:9/audio", StatusCallback=r.callbacks.url)
        assert created["status"] == "queued"
        error = await r.callbacks.wait_for("stream-error", created["sid"])
        assert error["fields"]["StreamError"] == "invalid_url"


async def test_a_stalled_stream_bursts_the_owed_chunks_with_nominal_timestamps():
    async with rig() as r:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Track="inbound_track")
        stream = await r.receiver.next_stream()
        await stream.wait_media(3)
        r.emulator.faults.add({"match": {"stream": "*"}, "action": {"type": "stall", "seconds": 0.3}, "count": 1})
        await stream.wait_media(40, timeout_s=5)
        media = stream.media("inbound")
        assert [m.timestamp for m in media] == [20 * i for i in range(len(media))]
        intervals = np.diff([m.received_at for m in media]) * 1000
        assert intervals.max() > 200  # the stall is visible ...
        assert stream.missing_chunks("inbound") == []  # ... and nothing was skipped


async def test_a_reset_stops_live_streams_cleanly_and_leaves_no_tasks_behind():
    async with rig() as r:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, StatusCallback=r.callbacks.url)
        stream = await r.receiver.next_stream()
        await stream.wait_media(2)
        await r.emulator.reset()
        assert await stream.wait_closed() == 1000
        assert isinstance(stream.messages[-1], Stop)
        assert r.emulator.sessions == {} and r.emulator.tasks.names() == ["signalwire:media-clock"]
        assert all(not c.streams for c in r.emulator.backend.conferences.values())
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url)  # and it streams again
        await (await r.receiver.next_stream()).wait_media(2)
