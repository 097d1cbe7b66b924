"""RTSP/RTP for the emulators: a sans-I/O RTSP core, RTP packetizers and a thin asyncio server.

The pull server (`RtspServer` fed by `LiveMedia`) is what the Misty `rtspd:<port>` mode serves;
`RtspRecorder` is the ANNOUNCE/RECORD side that push clients publish to.
"""

from emulators.kit.rtsp.live import AacTrack, H264Track, LiveMedia
from emulators.kit.rtsp.recorder import RtspRecorder
from emulators.kit.rtsp.server import RtspServer

__all__ = ["AacTrack", "H264Track", "LiveMedia", "RtspRecorder", "RtspServer"]
