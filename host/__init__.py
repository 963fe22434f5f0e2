"""The virtual host (无人直播 / 数字人主播) and the human host's assistant.

A room is a pipeline of small processors passing typed frames (see ``host.frames``):

    danmaku ─▶ danmaku.Triage ─▶ clustering.Clusterer ─▶ suggestions.SuggestionEngine ─▶ console / host loop
    events  ─▶ funnel.Funnel ─▶ alerts.AlertEngine ─────────────────────────────────────▶ console / host loop
    rundown ─▶ loop.HostLoop (script.ScriptWriter, greeter.Greeter) ─▶ speech sinks (text track, TTS)

Everything takes an injectable clock (``core.clock``), so tests and the soak run accelerated.
Public entry points: ``host.api.router``, ``liveroom.commands.host.host_command``, ``liveroom.commands.host.danmaku_bench_command``.
See docs/host.md.
"""
