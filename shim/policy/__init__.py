"""Ops-owned policy checks: artifacts (files, size, pickles) and dependencies (requirements.txt)."""
