"""SignalWire Compatibility API conference audio-stream emulator."""
