"""Renderers: terminal, JSON, JSON lines, Markdown, CSV, HTML."""
