"""Triggers (manual, cron, new data, degradation, drift) and the controller."""

from ctloop.triggers.controller import Controller, Firing
from ctloop.triggers.definitions import KINDS, TriggerDef, load_triggers, make_trigger

__all__ = ["KINDS", "Controller", "Firing", "TriggerDef", "load_triggers", "make_trigger"]
