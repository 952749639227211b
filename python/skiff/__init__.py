"""Skiff's Python side: a container library (skiff.container) and a WebSocket client (skiff.client)."""
