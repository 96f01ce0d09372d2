"""The twin's RTDE server (port 30004): output recipes streamed every n controller periods, input recipes
written into the controller's registers, as a UR controller speaks it to ur_rtde."""

from __future__ import annotations

import logging
import socket
import socketserver
import struct
import threading

import numpy as np

from real_robot.twin import rtde_wire as W
from real_robot.twin.station import Station

log = logging.getLogger("real_robot.twin")


class _RTDEHandler(socketserver.BaseRequestHandler):
    station: Station

    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_lock = threading.Lock()
        self.outputs = None  # (names, types, struct, every_n_ticks)
        self.input_recipes: dict[int, tuple[list[str], list[str], struct.Struct]] = {}
        self.streaming = threading.Event()
        self.closed = threading.Event()

    def _send(self, ptype: int, payload: bytes = b"") -> None:
        with self.send_lock:
            self.request.sendall(W.pack(ptype, payload))

    def handle(self):
        streamer = threading.Thread(target=self._stream, daemon=True)
        streamer.start()
        try:
            while not self.station.stop_event.is_set():
                ptype, payload = W.recv_packet(self.request)
                self._dispatch(ptype, payload)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            self.streaming.clear()
            with self.station.lock:
                self.station.new_state.notify_all()

    def _dispatch(self, ptype: int, payload: bytes) -> None:
        st = self.station
        if ptype == W.REQUEST_PROTOCOL_VERSION:
            version = struct.unpack(">H", payload[:2])[0]
            self._send(ptype, struct.pack(">B", 1 if version in (1, 2) else 0))
        elif ptype == W.GET_URCONTROL_VERSION:
            self._send(ptype, struct.pack(">IIII", *st.version))
        elif ptype == W.SETUP_OUTPUTS:
            freq = struct.unpack(">d", payload[:8])[0]
            names = W.split_names(payload[8:])
            types = [W.output_type(n) for n in names]
            if "NOT_FOUND" not in types and 0 < freq <= st.frequency:
                every = max(1, int(round(st.frequency / freq)))
                self.outputs = (names, types, W.recipe_struct(types), every)
                rid = 1
            else:
                rid = 0  # the controller rejects the recipe; ur_rtde names the missing variables
                if not 0 < freq <= st.frequency:
                    log.warning("RTDE output frequency %.1f Hz rejected (controller runs at %.0f Hz)", freq,
                                st.frequency)
            self._send(ptype, struct.pack(">B", rid) + ",".join(types).encode())
        elif ptype == W.SETUP_INPUTS:
            names = W.split_names(payload)
            types = [W.input_type(n) for n in names]
            rid = 0
            if "NOT_FOUND" not in types:
                rid = len(self.input_recipes) + 1
                self.input_recipes[rid] = (names, types, W.recipe_struct(types))
            self._send(ptype, struct.pack(">B", rid) + ",".join(types).encode())
        elif ptype == W.START:
            ok = self.outputs is not None
            self._send(ptype, struct.pack(">B", int(ok)))
            if ok:
                self.streaming.set()
        elif ptype == W.PAUSE:
            self.streaming.clear()
            self._send(ptype, struct.pack(">B", 1))
        elif ptype == W.DATA_PACKAGE:
            rid = payload[0]
            if rid not in self.input_recipes:
                log.warning("RTDE data package for unknown input recipe %d ignored", rid)
                return
            names, types, fmt = self.input_recipes[rid]
            values = W.unflatten(fmt.unpack(payload[1:1 + fmt.size]), types)
            with st.lock:
                st.inputs.update(zip(names, values))
        elif ptype == W.TEXT_MESSAGE:
            pass
        else:
            log.warning("RTDE package type %r not supported; ignored", chr(ptype))

    def _stream(self):
        """Send one data package every ``every`` controller periods while started."""
        st = self.station
        last = -1
        while not self.closed.is_set() and not st.stop_event.is_set():
            if not self.streaming.wait(timeout=0.05):
                continue
            names, types, fmt, every = self.outputs
            with st.lock:
                while st.tick == last or st.tick % every:
                    if self.closed.is_set() or st.stop_event.is_set():
                        return
                    st.new_state.wait(timeout=0.1)
                last = st.tick
                state = st.state
            values = [state.get(n, None) for n in names]
            values = [W.zero_of(t) if v is None else v for v, t in zip(values, types)]
            try:
                data = fmt.pack(*W.flatten([_plain(v) for v in values], types))
                if self.streaming.is_set():
                    self._send(W.DATA_PACKAGE, struct.pack(">B", 1) + data)
            except OSError:
                return


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
