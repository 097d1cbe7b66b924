"""`benchtwin bench`: capacity, pacing and latency of each emulator, measured side by side with the peer tools."""
