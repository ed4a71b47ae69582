"""The declared continuous-training loop: its declaration, pipeline, replay and controller."""

from ctloop.loop.declaration import LoopSpec, get_loop, load_loops, parse_loop

__all__ = ["LoopSpec", "get_loop", "load_loops", "parse_loop"]
