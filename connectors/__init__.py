"""Live-platform connectors: platform danmaku and events in, the agent's answers out (docs/connectors.md).

    adapters (douyin push, signed webhook, bilibili, replay) ─▶ events.LiveEvent ─▶ hub.ConnectorHub
        ─▶ dedup, per-room order ─▶ the room's host pipeline + the agent ─▶ sinks (overlay, platform replies)

Health per connector (``health.Health``), dead letters (``deadletter.DeadLetters``), pull connections kept
up with backoff (``supervisor.Supervisor``), configurations and secrets (``store.ConnectorStore``).
"""
