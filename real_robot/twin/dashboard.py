"""The twin's dashboard server (port 29999): the text commands ur_rtde's DashboardClient sends, answered as a
UR controller answers them, plus the twin-only ``twin reset SEED`` (a person resetting the scene)."""

from __future__ import annotations

import socketserver

from real_robot.twin.station import Station


class _DashboardHandler(socketserver.StreamRequestHandler):
    station: Station

    def handle(self):
        self.wfile.write(b"Connected: Universal Robots Dashboard Server\n")
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            reply = self.answer(line)
            self.wfile.write((reply + "\n").encode())
            if line == "quit":
                return

    def answer(self, line: str) -> str:
        st = self.station
        cmd = line.lower()
        v = st.version
        if cmd == "polyscopeversion":
            return f"URSoftware {v[0]}.{v[1]}.{v[2]}.{v[3]} (Nov 27 2026)"
        if cmd == "get serial number":
            return "20265300001"
        if cmd == "get robot model":
            return "UR5"
        if cmd == "robotmode":
            return "Robotmode: RUNNING"
        if cmd in ("safetystatus", "safetymode"):
            return ("Safetystatus: " if cmd == "safetystatus" else "Safetymode: ") + "NORMAL"
        if cmd == "programstate":
            return "PLAYING rtde_control" if st.program_running else "STOPPED <unnamed>"
        if cmd == "running":
            return f"Program running: {str(st.program_running).lower()}"
        if cmd == "is in remote control":
            return "true"
        if cmd == "stop":
            st.stop_program()
            return "Stopped"
        if cmd == "pause":
            st.stop_program()
            return "Pausing program"
        if cmd == "play":
            if st.last_program_text and not st.program_running:
                st.start_program(st.last_program_text)
                return "Starting program"
            return "Failed to execute: play"
        if cmd.startswith("load "):
            return f"File not found: {line[5:]}"  # the twin has no PolyScope programs on disk
        if cmd == "get loaded program":
            return "No program loaded"
        if cmd in ("power on", "power off", "brake release"):
            return {"power on": "Powering on", "power off": "Powering off", "brake release": "Brake releasing"}[cmd]
        if cmd == "unlock protective stop":
            return "Protective stop releasing"
        if cmd == "close safety popup":
            return "closing safety popup"
        if cmd == "close popup":
            return "closing popup"
        if cmd.startswith("popup "):
            return "showing popup"
        if cmd.startswith("addtolog "):
            return "Added log message"
        if cmd == "isprogramsaved":
            return "true <unnamed>"
        if cmd.startswith("twin reset"):
            # Twin-only extension (no UR controller has it): put the T block at a seeded random pose, the way a
            # person resets the real scene between episodes. The arm is left where it is.
            parts = cmd.split()
            seed = int(parts[2]) if len(parts) > 2 and parts[2].lstrip("-").isdigit() else 0
            with st.lock:
                st.sim.reset_block(seed)
            return f"twin scene reset (seed {seed})"
        if cmd == "quit":
            return "Disconnected"
        if cmd == "shutdown":
            st.stop_event.set()
            return "Shutting down"
        return f"could not understand: '{line}'"
