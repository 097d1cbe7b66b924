"""Misty II robot emulator: REST control, video WebSocket, AV streaming and the pubsub event WebSocket."""
