"""Rendering of PushT frames that look like the reference's (and so like the dataset's ``img`` array).

The reference drew its pymunk space with pymunk's pygame debug-draw (with its own overrides) on a 512x512
canvas and shrank it with ``cv2.resize`` (bilinear). Image policies trained on the recorded images must see the
same pixels at evaluation time, so this module reproduces that look with plain pygame calls: white background,
the goal T filled light green, each block box filled with a 1.2x lightened slate gray and outlined by
4-px "fat segments" in slate gray, the agent a royal-blue disc with a lightened inner disc of radius r-4, the
walls 4-px light-gray fat segments. (Drawing from poses instead of walking the pymunk space lets a frame be
rendered from any state, e.g. a recorded one, without a simulation.)
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pygame

from envs.pusht.arena import AGENT_RADIUS, WALL_RADIUS, WALLS, WINDOW_SIZE
from envs.pusht.geometry import GOAL_POSE, T_BOXES_LOCAL, to_world

OUTLINE_RADIUS = 2  # the reference drew every polygon edge as a fat segment of radius 2
# Pixels that a wall's fat segment can touch lie within this margin of the wall lines (radius + rounding).
_WALL_CLEAR_LOW = 5 + WALL_RADIUS + OUTLINE_RADIUS + 2
_WALL_CLEAR_HIGH = 506 - WALL_RADIUS - OUTLINE_RADIUS - 2

GOAL_COLOR = (144, 238, 144)  # pygame "LightGreen"
BLOCK_COLOR = (119, 136, 153)  # "LightSlateGray"
AGENT_COLOR = (65, 105, 225)  # "RoyalBlue"
WALL_COLOR = (211, 211, 211)  # "LightGray"
ACTION_COLOR = (255, 0, 0)


def _lighten(color):
    """The reference's fill colour for polygons and the inner agent disc: 1.2x, capped at 255, truncated."""
    return tuple(int(min(np.float32(1.2) * np.float32(c), 255)) for c in color)


def _pt(p):
    return round(p[0]), round(p[1])


def _fat_segment(surface, a, b, color, radius):
    """A thick segment drawn the way the reference's debug-draw override did (line + quad + round caps).

    Its quad uses the absolute values of the orthogonal direction, a quirk kept on purpose: it decides which
    pixels the outlines cover, and the recorded images were drawn with it.
    """
    p1, p2 = _pt(a), _pt(b)
    width = round(max(1, radius * 2))
    pygame.draw.lines(surface, color, False, [p1, p2], width)
    if width <= 2:
        return
    ox, oy = abs(p2[1] - p1[1]), abs(p2[0] - p1[0])
    if ox == 0 and oy == 0:
        return
    k = radius / math.hypot(ox, oy)
    ox, oy = round(ox * k), round(oy * k)
    quad = [(p1[0] - ox, p1[1] - oy), (p1[0] + ox, p1[1] + oy), (p2[0] + ox, p2[1] + oy), (p2[0] - ox, p2[1] - oy)]
    pygame.draw.polygon(surface, color, quad)
    pygame.draw.circle(surface, color, p1, round(radius))
    pygame.draw.circle(surface, color, p2, round(radius))


class Renderer:
    """Draws PushT frames from (agent position, block pose); keeps one 512x512 pygame canvas to reuse."""

    def __init__(self):
        self.canvas = pygame.Surface((WINDOW_SIZE, WINDOW_SIZE), depth=24)
        if self.canvas.get_masks()[:3] != (0xFF0000, 0xFF00, 0xFF) or self.canvas.get_pitch() != 3 * WINDOW_SIZE:
            raise RuntimeError("Renderer: unexpected pygame surface layout; expected packed 24-bit BGR rows")
        # The static part (background, goal, walls) is drawn once and blitted each frame.
        self.background = self.canvas.copy()
        self.background.fill((255, 255, 255))
        for box in T_BOXES_LOCAL:
            pygame.draw.polygon(self.background, GOAL_COLOR, [_pt(p) for p in to_world(box, GOAL_POSE)])
        self._draw_walls(self.background)

    @staticmethod
    def _draw_walls(surface):
        for a, b in WALLS:
            _fat_segment(surface, a, b, WALL_COLOR, WALL_RADIUS)

    def draw(self, agent_pos, block_pose) -> pygame.Surface:
        """Draw the scene on the canvas (world coordinates are pixel coordinates, y down) and return it."""
        surf = self.canvas
        surf.blit(self.background, (0, 0))
        fill = _lighten(BLOCK_COLOR)
        near_wall = False
        for box in T_BOXES_LOCAL:
            verts = to_world(box, block_pose)
            near_wall |= bool((verts.min() < _WALL_CLEAR_LOW) | (verts.max() > _WALL_CLEAR_HIGH))
            pygame.draw.polygon(surf, fill, [_pt(v) for v in verts])
            for i in range(len(verts)):
                _fat_segment(surf, verts[i], verts[(i + 1) % len(verts)], BLOCK_COLOR, OUTLINE_RADIUS)
        center = _pt(agent_pos)
        pygame.draw.circle(surf, AGENT_COLOR, center, AGENT_RADIUS)
        pygame.draw.circle(surf, _lighten(AGENT_COLOR), center, AGENT_RADIUS - 4)
        near_wall |= min(center) - AGENT_RADIUS < _WALL_CLEAR_LOW or max(center) + AGENT_RADIUS > _WALL_CLEAR_HIGH
        if near_wall:  # the walls are drawn on top, as the reference did; elsewhere the background's are the same
            self._draw_walls(surf)
        return surf

    def render(self, agent_pos, block_pose, size: int = 96, action=None) -> np.ndarray:
        """An RGB frame (size, size, 3) uint8; with ``action`` given, its target is marked by a red cross."""
        self.draw(agent_pos, block_pose)
        # The 24-bit canvas's memory is rows of B, G, R bytes: view it without a copy (pygame.image.tobytes
        # would spend ~0.4 ms converting it), resize in BGR and flip the small result to RGB.
        bgr = np.frombuffer(self.canvas.get_buffer(), np.uint8).reshape(WINDOW_SIZE, WINDOW_SIZE, 3)
        if size != WINDOW_SIZE:
            bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_LINEAR)
        img = np.ascontiguousarray(bgr[..., ::-1])
        if action is not None:
            coord = tuple(int(c) for c in np.asarray(action, dtype=np.float64) / WINDOW_SIZE * size)
            cv2.drawMarker(img, coord, color=ACTION_COLOR, markerType=cv2.MARKER_CROSS,
                           markerSize=max(int(8 / 96 * size), 3), thickness=max(int(1 / 96 * size), 1))
        return img
