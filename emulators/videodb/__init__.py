"""The VideoDB RTStream emulator: REST wire-compatible with the videodb 0.5.1 SDK, real RTSP/RTMP ingest."""
