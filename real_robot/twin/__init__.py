"""The simulated twin of the Push-T UR5e station: network servers of a UR controller in front of the MuJoCo
physics of ``envs.ur5e_pusht``. Start one with :func:`real_robot.twin.launch.start_twin`."""
