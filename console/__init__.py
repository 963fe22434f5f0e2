"""Merchant console: accounts, tenant isolation, knowledge-base and prompt editing, live dashboard.

Wiring (server.py): ``console.api.router`` in ``_optional_routers()`` and ``console.guard.Guard`` as
app-wide middleware (``app.add_middleware(Guard)``); see docs/console.md.
"""
