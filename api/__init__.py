"""The shared API layer: ``api.base`` (Django, DRF and ``config`` only) under every app's
``api/`` package, and ``api.dialects`` on top, reading the apps' selectors."""
