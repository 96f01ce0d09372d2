"""The twin's script servers (primary 30002 / secondary 30003): receive URScript programs; ur_rtde's
``rtde_control`` program is run by the twin's ControlProgram, any other is refused with a log line."""

from __future__ import annotations

import logging
import re
import socketserver

from real_robot.twin.station import Station

log = logging.getLogger("real_robot.twin")

_PROGRAM = re.compile(r"^def (\w+)\(\):\n.*?^end\s*$", re.S | re.M)


class _ScriptHandler(socketserver.BaseRequestHandler):
    station: Station

    def handle(self):
        buf = ""
        while True:
            try:
                chunk = self.request.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk.decode("utf-8", "replace")
            while (m := _PROGRAM.search(buf)) is not None:
                self._run(m.group(1), m.group(0))
                buf = buf[m.end():]

    def _run(self, name: str, text: str) -> None:
        if name == "rtde_control":
            self.station.start_program(text)
        else:
            # A real controller would run it; the twin emulates only ur_rtde's control program and says so.
            log.error("twin cannot run URScript program %r (only ur_rtde's rtde_control program is emulated)",
                      name)
