"""Backbones, episodic batch norm and the CrossTransformer head."""
