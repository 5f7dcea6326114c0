"""Leaf helpers shared by every layer: fingerprints, the sharded resumable runner, safe files."""
