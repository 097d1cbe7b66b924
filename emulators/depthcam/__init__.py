"""Robopipe stereo depth camera emulator: Luxonis OAK devices behind the Robopipe API."""
