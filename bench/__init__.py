"""The relay benchmark (bench/relay.py)."""

from __future__ import annotations
