"""RTDE wire format (Universal Robots Real-Time Data Exchange, protocol version 2), server side.

Packet: ``uint16 size`` (including the 3-byte header), ``uint8 type``, payload; everything big-endian.
Why hand-written: no Python library implements the *controller* side of RTDE (ur_rtde and UR's own
``rtde`` package are clients); this module holds only the framing and the variable type table.
"""

from __future__ import annotations

import re
import socket
import struct

# Package types (ASCII letters, as in UR's RTDE guide).
REQUEST_PROTOCOL_VERSION = ord("V")
GET_URCONTROL_VERSION = ord("v")
TEXT_MESSAGE = ord("M")
DATA_PACKAGE = ord("U")
SETUP_OUTPUTS = ord("O")
SETUP_INPUTS = ord("I")
START = ord("S")
PAUSE = ord("P")

# RTDE type name -> struct format (big-endian, no padding).
TYPE_FORMATS = {
    "BOOL": "?", "UINT8": "B", "UINT32": "I", "UINT64": "Q", "INT32": "i", "DOUBLE": "d",
    "VECTOR3D": "3d", "VECTOR6D": "6d", "VECTOR6INT32": "6i", "VECTOR6UINT32": "6I",
}

_V6D = "VECTOR6D"
_OUTPUT_TYPES = {
    "timestamp": "DOUBLE",
    **{k: _V6D for k in (
        "target_q", "target_qd", "target_qdd", "target_current", "target_moment", "actual_q", "actual_qd",
        "actual_qdd", "actual_current", "actual_current_window", "actual_current_as_torque", "joint_control_output",
        "actual_TCP_pose", "actual_TCP_speed", "actual_TCP_force", "target_TCP_pose", "target_TCP_speed",
        "joint_temperatures", "actual_joint_voltage", "ft_raw_wrench", "payload_inertia", "actual_moment",
        "joint_position_deviation_ratio")},
    **{k: "VECTOR3D" for k in ("actual_tool_accelerometer", "payload_cog", "elbow_position", "elbow_velocity")},
    **{k: "UINT64" for k in ("actual_digital_input_bits", "actual_digital_output_bits")},
    **{k: "INT32" for k in ("robot_mode", "safety_mode", "safety_status", "tool_output_voltage")},
    **{k: "UINT32" for k in (
        "runtime_state", "robot_status_bits", "safety_status_bits", "analog_io_types", "tool_mode",
        "tool_analog_input_types", "script_control_line", "output_bit_registers0_to_31",
        "output_bit_registers32_to_63", "input_bit_registers0_to_31", "input_bit_registers32_to_63",
        "euromap67_input_bits", "euromap67_output_bits")},
    "joint_mode": "VECTOR6INT32",
    **{k: "DOUBLE" for k in (
        "actual_execution_time", "speed_scaling", "target_speed_fraction", "actual_momentum", "actual_main_voltage",
        "actual_robot_voltage", "actual_robot_current", "standard_analog_input0", "standard_analog_input1",
        "standard_analog_output0", "standard_analog_output1", "io_current", "tool_analog_input0",
        "tool_analog_input1", "tool_output_current", "tool_temperature", "tcp_force_scalar", "payload",
        "actual_robot_energy_consumed", "actual_robot_braking_energy_dissipated", "euromap67_24V_voltage",
        "euromap67_24V_current")},
}

_INPUT_TYPES = {
    "speed_slider_mask": "UINT32", "speed_slider_fraction": "DOUBLE",
    **{k: "UINT8" for k in (
        "standard_digital_output_mask", "standard_digital_output", "configurable_digital_output_mask",
        "configurable_digital_output", "tool_digital_output_mask", "tool_digital_output",
        "standard_analog_output_mask", "standard_analog_output_type")},
    "standard_analog_output_0": "DOUBLE", "standard_analog_output_1": "DOUBLE",
    "input_bit_registers0_to_31": "UINT32", "input_bit_registers32_to_63": "UINT32",
    "external_force_torque": _V6D,
}

_REGISTER = re.compile(r"^(input|output)_(int|double|bit)_register_(\d+)$")
_REGISTER_TYPES = {"int": "INT32", "double": "DOUBLE", "bit": "BOOL"}


def register_type(name: str) -> str | None:
    m = _REGISTER.match(name)
    if m is None or int(m.group(3)) > (127 if m.group(2) == "bit" else 47):
        return None
    return _REGISTER_TYPES[m.group(2)]


def output_type(name: str) -> str:
    """The RTDE type a controller reports for output ``name`` (registers of both directions are readable)."""
    return _OUTPUT_TYPES.get(name) or register_type(name) or "NOT_FOUND"


def input_type(name: str) -> str:
    if name.startswith("output_"):
        return "NOT_FOUND"
    return _INPUT_TYPES.get(name) or register_type(name) or "NOT_FOUND"


def recipe_struct(types: list[str]) -> struct.Struct:
    return struct.Struct(">" + "".join(TYPE_FORMATS[t] for t in types))


def zero_of(rtde_type: str):
    fmt = TYPE_FORMATS[rtde_type]
    n = int(fmt[:-1]) if len(fmt) > 1 else 1
    zero = False if fmt[-1] == "?" else (0.0 if fmt[-1] == "d" else 0)
    return [zero] * n if len(fmt) > 1 else zero


def flatten(values: list, types: list[str]) -> list:
    """Values in recipe order -> the flat argument list ``struct.pack`` wants."""
    flat = []
    for v, t in zip(values, types):
        if len(TYPE_FORMATS[t]) > 1:
            flat.extend(v)
        else:
            flat.append(v)
    return flat


def unflatten(flat: tuple, types: list[str]) -> list:
    out, i = [], 0
    for t in types:
        fmt = TYPE_FORMATS[t]
        n = int(fmt[:-1]) if len(fmt) > 1 else 1
        out.append(list(flat[i:i + n]) if len(fmt) > 1 else flat[i])
        i += n
    return out


def pack(ptype: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HB", 3 + len(payload), ptype) + payload


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed the RTDE connection")
        buf += chunk
    return bytes(buf)


def recv_packet(sock: socket.socket) -> tuple[int, bytes]:
    size, ptype = struct.unpack(">HB", recv_exact(sock, 3))
    if size < 3:
        raise ConnectionError(f"malformed RTDE header (size {size})")
    return ptype, recv_exact(sock, size - 3)


def split_names(payload: bytes) -> list[str]:
    return [n for n in payload.decode("ascii", "replace").strip().split(",") if n]
