"""The Push-T arena's physical layout, shared by the simulation, the renderer, the expert and the teleop window:
a 512 x 512 px table, four static walls (pymunk segments at 5 and 506, radius 2) and the pusher, a disc of
radius 15 px (the reference environment's values)."""

WINDOW_SIZE = 512
AGENT_RADIUS = 15
WALLS = (((5, 506), (5, 5)), ((5, 5), (506, 5)), ((506, 5), (506, 506)), ((5, 506), (506, 506)))
WALL_RADIUS = 2
