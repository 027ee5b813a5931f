"""Integrations with annotation tools: each speaks the tool's own protocol under
``/integrations/<tool>/<pid>/``."""
