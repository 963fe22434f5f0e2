"""The virtual host on air: a show for a room started, paused, resumed and stopped from the console.

While it runs, the host loop (host/loop.py) speaks sentence by sentence: each sentence goes to the room's
text track (the overlay's caption, the host console) and its voice (espeak-ng) to the room's overlay, which
OBS captures into the broadcast. Hot questions from any channel — the room socket or a connector — interrupt
it between sentences and it resumes, as in ``liveroom host``. Pausing takes effect at the next sentence (the
current one always finishes); a paused show keeps its place in the rundown.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from connectors.overlay import OverlayAudioOut, OverlayFeeds
from core.errors import BadRequest, Conflict
from host.frames import SpokenLine
from host.speech import EspeakSink, Speaker, SpeechError, TextTrack

log = logging.getLogger("liveroom.connectors.onair")
DEMO_RUNDOWN = Path(__file__).resolve().parent.parent / "knowledge" / "demo" / "rundown.yaml"


class PausableSpeaker(Speaker):
    """A ``Speaker`` that waits, before each sentence, while the show is paused."""

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.resumed = asyncio.Event()
        self.resumed.set()

    async def say(self, line: SpokenLine) -> None:
        await self.resumed.wait()
        await super().say(line)


class Show:
    def __init__(self, room: Any, loop: Any, speaker: PausableSpeaker, audio: OverlayAudioOut, source: str):
        self.room, self.loop, self.speaker, self.audio, self.source = room, loop, speaker, audio, source
        self.task: asyncio.Task | None = None
        self.error = ""

    @property
    def state(self) -> str:
        if self.task is None or self.task.done():
            return "stopped"
        return "running" if self.speaker.resumed.is_set() else "paused"

    def status(self) -> dict[str, Any]:
        r = self.loop.report
        return {
            "state": self.state,
            "rundown": self.source,
            "lines": self.loop.seq,
            "answered_clusters": r.answered_clusters,
            "voiced": self.speaker.stats.get("voiced", 0),
            "audio_s": round(self.audio.seconds, 1),
            "segment": self.loop.slot.segment.type if self.loop.slot is not None else None,
            "sku": self.room.context_sku,
            "error": self.error,
        }


class OnAir:
    """The shows of the app, one per room at most."""

    def __init__(self, feeds: OverlayFeeds):
        self.feeds = feeds
        self.shows: dict[str, Show] = {}

    def get(self, room_id: str) -> Show | None:
        return self.shows.get(room_id)

    def start(self, room: Any, rundown_yaml: str | None = None, rundown_path: str = "", voice: bool = True) -> Show:
        from host.loop import HostLoop
        from host.rundown import RundownError, check_references, parse_rundown

        cur = self.shows.get(room.room_id)
        if cur is not None and cur.state != "stopped":
            raise Conflict("a show is already on air in this room", code="show_running")
        path = Path(rundown_path) if rundown_path else DEMO_RUNDOWN
        source = "(posted)" if rundown_yaml else path.name
        try:
            text = rundown_yaml if rundown_yaml else path.read_text(encoding="utf-8")
            rd = parse_rundown(text, source)
        except RundownError as e:
            raise BadRequest("rundown: " + "; ".join(i["message"] for i in e.as_dicts()[:3]), code="bad_rundown") from e
        except OSError as e:
            raise BadRequest(f"rundown not readable: {e}", code="bad_rundown") from e
        snap = room.snapshot()
        issues = check_references(rd, set(snap.products) if snap else set(), None)
        missing = [i.message for i in issues if "sku" in i.path]
        if missing:
            raise BadRequest("rundown names products not in the catalog: " + "; ".join(missing[:3]), code="bad_rundown")
        audio = OverlayAudioOut(self.feeds, room.room_id)
        tts = None
        if voice:
            try:
                tts = EspeakSink(audio)  # type: ignore[arg-type]
            except SpeechError as e:
                log.warning("show in %s: no voice (%s); captions only", room.room_id, e)
        speaker = PausableSpeaker(
            room.clock,
            TextTrack(room.bus),
            tts,
            rd.pace.chars_per_second,
            on_failure=lambda e: room.alerts.alert(
                "tts_failed", f"语音合成失败，已切换为字幕：{e}", severity="warning"
            ),
        )
        loop = HostLoop(room, rd, speaker)
        show = Show(room, loop, speaker, audio, source)
        room.start()

        async def run() -> None:
            try:
                await loop.run()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # logged and shown: a show never ends silently
                show.error = f"{type(e).__name__}: {e}"
                log.exception("show in %s failed", room.room_id)

        show.task = asyncio.get_running_loop().create_task(run(), name=f"show:{room.room_id}")
        self.shows[room.room_id] = show
        log.info("show on air in %s (%s)", room.room_id, source)
        return show

    def pause(self, room_id: str) -> Show:
        show = self._running(room_id)
        show.speaker.resumed.clear()
        return show

    def resume(self, room_id: str) -> Show:
        show = self._running(room_id)
        show.speaker.resumed.set()
        return show

    async def stop(self, room_id: str) -> Show:
        show = self._running(room_id)
        show.loop.stop()
        show.speaker.resumed.set()
        if show.task is not None:
            show.task.cancel()
            try:
                await show.task
            except (asyncio.CancelledError, Exception):
                pass
        log.info("show in %s stopped", room_id)
        return show

    def _running(self, room_id: str) -> Show:
        show = self.shows.get(room_id)
        if show is None or show.state == "stopped":
            raise Conflict("no show on air in this room", code="no_show")
        return show
