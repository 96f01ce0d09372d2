"""Running policies on a real arm: a UR (e-series / CB3) over RTDE, RealSense cameras, SpaceMouse teleop.

    shm_ring        lock-free shared-memory ring buffers (camera frames, arm state), timestamped records
    interpolator    timed TCP pose trajectories (linear position, slerp rotation, speed caps)
    arm             RTDEArm: the 125/500 Hz servoL controller process (ur_rtde) + its command queue
    cameras         RingCamera (any producer) and RealSenseCamera (pyrealsense2 producer process)
    teleop          SpaceMouse (libspnav), KeyboardTeleop, ScriptedTeleop
    safety          Workspace clipping, non-finite rejection, EStop latch
    station         PushTStation: timestamp-aligned observations, scheduled actions, episode recording
    runner          run_teleop / run_policy loops (inference thread, stale-action dropping, watchdog)
    policy_adapter  wraps a robodiff policy (contract 4) as an obs -> action-chunk callable
    session         open_station(): bring twin or hardware up and down in one place
    twin/           the simulated UR5e Push-T station behind real RTDE / dashboard / URScript servers
"""
