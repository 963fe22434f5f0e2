"""Voice latency and barge-in on scripted turns, streamed in real time over the WebSocket.

    python -m evals.voice [--json] [--only stub|whisper] [--turns N]

The app runs in-process (uvicorn on a loopback port, its own thread) on the demo catalog; a scripted
viewer speaks espeak-ng questions (English room), 20 ms frames at real-time pace, and sometimes
talks over the answer: backchannels ("mm-hmm", "嗯", "对"...), a cough-like noise burst, or a real
interrupting question. It runs twice: with the packaged Whisper base and with an instant stub STT
(which knows the script), so the pipeline's own overhead is visible next to the STT's.

Measured from the client's side:
- ``eos_to_first_audio_ms``: the last voiced sample of the question sent → the first answer audio
  frame received;
- ``barge_in_stop_ms``: the first voiced sample of an interrupting question sent → the bot's audio
  stopped (``bot.paused`` or ``interruption`` received; no audio arrives after it);
- ``barge_in_commit_ms``: the same onset → ``interruption`` (the answer abandoned);
- ``false_interruptions``: backchannels/noises after which the answer was abandoned;
- ``audio_after_stop``: audio frames received after a stop event (should be 0).
Between turns the client presses "stop" (an ``interrupt`` message) rather than waiting for the
whole answer, to keep the run short; those interruptions are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from agent.core import AgentConfig
from core.settings import Settings
from evals.retrieval import DEMO
from liveroom.container import Container

# (question, what the viewer does while the answer plays)
SCRIPT: list[tuple[str, str | None]] = [
    ("how much is the sea salt almond?", "bc:mm-hmm"),
    ("how much is the coffee?", "int:wait, is the coffee in stock?"),
    ("is the sea salt almond in stock?", "bc:嗯"),
    ("how much is the sunscreen?", "noise:0"),
    ("how much is the beef jerky?", "int:sorry, how much is the eye cream?"),
    ("how much is the lipstick?", "bc:uh-huh"),
    ("what is the price of the face mask?", "bc:对"),
    ("how much is the body lotion?", "int:hold on, how much are the jeans?"),
    ("how much is the cleanser?", "bc:yeah"),
    ("how much are the oats?", "noise:1"),
    ("how much is the mooncake gift box?", "int:no wait, how much is the hoodie?"),
    ("how much is the down jacket?", "bc:okay"),
    ("is the coffee in stock?", "bc:好的"),
    ("how much is the eye cream?", "int:actually, how much is the sunscreen?"),
    ("how much is the face serum?", "bc:right"),
    ("how much is the makeup remover oil?", "noise:2"),
    ("how much is the cushion compact?", "int:excuse me, how much is the coffee?"),
    ("how much are the cotton pads?", "bc:嗯嗯"),
]
BACKCHANNEL_ZH = {"嗯": "en4", "对": "dui4", "好的": "hao3 de5", "嗯嗯": "en4 en4"}
WARM_UP = "hello, how much is the coffee?"
LISTEN_SECS = 1.2  # answer audio heard before the viewer talks over it
AFTER_BARGE_SECS = 1.6  # watched after a backchannel / noise ends


def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 1)


def _summary(xs: list[float]) -> dict:
    return {
        "p50": _pct(xs, 0.5),
        "p95": _pct(xs, 0.95),
        "n": len(xs),
        "mean": round(statistics.fmean(xs), 1) if xs else None,
    }


class ScriptedTranscriber:
    """The stub STT's "recognizer": whatever the scripted viewer says it is saying right now.

    The viewer runs in another process (so it doesn't compete with the server for the GIL) and
    writes the line it is about to say to a file; the stub reads it when a segment ends.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def set(self, text: str) -> None:
        with self._lock:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(self.path)

    def __call__(self, pcm: bytes) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""


async def _session(
    host: str, transcriber: ScriptedTranscriber | None, script, clips, lang: str = "en", warm_up: str = WARM_UP
) -> dict:
    from sim.voice_clips import Mic, VoiceClient

    eos, stops, commits, bc_pauses, bc_resume = [], [], [], [], []
    false_int, missed, audio_after_stop, turns, misheard = 0, 0, 0, 0, []
    where: list[str] = []
    url = f"ws://{host}/ws/rooms/eval/voice?lang={lang}&viewer_id=eval-viewer&merchant=demo"
    heard_all: list[dict] = []
    async with VoiceClient.connect(url) as cl:
        await cl.wait_for("ready", timeout=120)
        await cl.send_json({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1})
        async with Mic(cl) as mic:

            async def speak(text: str, key: str) -> tuple[float, float]:
                """Say one clip; returns (onset, end) of its voiced part, in monotonic time."""
                pcm, span = clips[key]
                if transcriber is not None:
                    transcriber.set(text)
                t0 = await mic.say(pcm)
                return t0 + span[0], t0 + span[1]

            def audio_between(since: float, until: float | None = None) -> int:
                """Audio frames received from 60 ms after `since` (one frame may be in flight)."""
                return sum(1 for r in cl.events("audio", since + 0.06) if until is None or r.t < until)

            async def answered(end: float, said: str) -> None:
                nonlocal turns
                first = await cl.wait_for("audio", since=end, timeout=30)
                eos.append((first.t - end) * 1000)
                turns += 1
                heard = [r.data["text"] for r in cl.events("transcript", end - 5)]
                done = [r.data for r in cl.events("answer.done", end - 5)]
                heard_all.append(
                    {"said": said, "heard": heard[-1] if heard else "", "answer": done[-1] if done else None}
                )
                if lang == "zh":
                    pass  # judged by evals.voice_zh (product words and citations)
                elif transcriber is None and heard and said.split()[-1].strip("?").lower() not in heard[-1].lower():
                    misheard.append({"said": said, "heard": heard[-1]})

            # A warm-up turn, not counted: the first answer of a process pays one-off costs
            # (the audience store's first query and migrations, the first TTS run).
            _, end = await speak(warm_up, warm_up)
            await cl.wait_for("audio", since=end, timeout=60)
            await asyncio.sleep(0.5)
            await cl.send_json({"type": "interrupt"})
            await asyncio.sleep(0.6)
            for question, action in script:
                _, end = await speak(question, question)
                await answered(end, question)
                await asyncio.sleep(LISTEN_SECS)
                if action:
                    kind, _, what = action.partition(":")
                    b_on, b_end = await speak(what if kind == "int" else "", action)
                    if kind == "int":
                        try:
                            inter = await cl.wait_for("interruption", since=b_on - 0.05, timeout=4)
                        except TimeoutError:
                            missed += 1
                        else:
                            commits.append((inter.t - b_on) * 1000)
                            paused = cl.events("bot.paused", b_on - 0.05)
                            stop = paused[0] if paused and paused[0].t < inter.t else inter
                            stops.append((stop.t - b_on) * 1000)
                            await answered(b_end, what)
                            nxt = cl.events("bot.started_speaking", inter.t)
                            # (a pause in the question — "no wait, …" — may resume the answer briefly:
                            # count from the pause that led to the interruption)
                            last = [r for r in cl.events("bot.paused", b_on - 0.05) if r.t < inter.t]
                            n = audio_between(last[-1].t if last else inter.t, nxt[0].t if nxt else None)
                            audio_after_stop += n
                            where += [f"interrupt:{question}:{n}"] if n else []
                    else:
                        await asyncio.sleep(AFTER_BARGE_SECS)
                        if cl.events("interruption", b_on - 0.05) or cl.events("answer.interrupted", b_on - 0.05):
                            false_int += 1
                        paused = cl.events("bot.paused", b_on - 0.05)
                        if paused:
                            bc_pauses.append((paused[0].t - b_on) * 1000)
                            resumed = cl.events("bot.resumed", paused[0].t)
                            if resumed:
                                bc_resume.append((resumed[0].t - b_end) * 1000)
                            n = audio_between(paused[0].t, resumed[0].t if resumed else None)
                            audio_after_stop += n
                            where += [f"pause:{question}:{n}"] if n else []
                # the "stop" button before the next question (keeps the run short; not counted)
                await asyncio.sleep(0.6)
                t_stop = time.monotonic()
                await cl.send_json({"type": "interrupt"})
                await asyncio.sleep(0.5)
                n = audio_between(t_stop + 0.1)
                audio_after_stop += n
                where += [f"stop-button:{question}:{n}"] if n else []
    n_bc = sum(1 for _, a in script if a and not a.startswith("int"))
    return {
        "turns": turns,
        "eos_to_first_audio_ms": _summary(eos),
        "barge_in_stop_ms": _summary(stops),
        "barge_in_commit_ms": _summary(commits),
        "false_interruptions": false_int,
        "backchannels_and_noises": n_bc,
        "missed_interruptions": missed,
        "backchannel_pause_ms": _summary(bc_pauses),
        "backchannel_resume_after_end_ms": _summary(bc_resume),
        "audio_after_stop": audio_after_stop,
        "audio_after_stop_where": where,
        "misheard": misheard,
        "heard": heard_all,
    }


def _clips(script) -> dict:
    from sim.voice_clips import noise_burst, speech_span, synth

    clips = {WARM_UP: (synth(WARM_UP), speech_span(synth(WARM_UP)))}
    for q, action in script:
        pcm = synth(q)
        clips[q] = (pcm, speech_span(pcm))
        if action:
            kind, _, what = action.partition(":")
            if kind == "noise":
                pcm = noise_burst(0.25, seed=int(what))
            elif what in BACKCHANNEL_ZH:
                pcm = synth(BACKCHANNEL_ZH[what], voice="cmn-latn-pinyin")
            else:
                pcm = synth(what)
            clips[action] = (pcm, speech_span(pcm))
    return clips


def _client(
    host: str, mode: str, transcript_file: str | None, n_turns: int | None, lang: str = "en", study: str = "main"
) -> dict:
    """The scripted viewer, in its own process; prints its measurements as JSON."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "evals.voice", "--client", host, "--mode", mode, "--lang", lang, "--study", study]
    if transcript_file:
        cmd += ["--transcript-file", transcript_file]
    if n_turns:
        cmd += ["--turns", str(n_turns)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode:
        raise RuntimeError(f"voice eval client failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def client_main(
    host: str, mode: str, transcript_file: str | None, n_turns: int | None, lang: str = "en", study: str = "main"
) -> None:
    if lang == "zh":
        from evals import voice_zh

        if study == "turns":
            voice_zh.turn_client_main(host, transcript_file, n_turns)
        else:
            voice_zh.client_main(host, mode, transcript_file, n_turns)
        return
    script = SCRIPT[:n_turns] if n_turns else SCRIPT
    transcriber = ScriptedTranscriber(Path(transcript_file)) if transcript_file else None
    res = asyncio.run(_session(host, transcriber, script, _clips(script)))
    print(json.dumps(res, ensure_ascii=False))


def run(only: str | None = None, n_turns: int | None = None) -> dict:
    from server import create_app
    from sim.voice_clips import serve_in_thread
    from voice.api import ensure_voice_routes
    from voice.services import VoiceServices
    from voice.stt import StubSTTService

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        c = Container(Settings(data_dir=Path(tmp), llm_autostart=False), AgentConfig(rate=(1000, 1.0)))
        files = sorted(p for p in DEMO.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
        c.kb.import_files("demo", files)
        c.rooms.ensure("demo", "eval", "voice eval", "eval")  # public channels answer only in registered rooms
        app = create_app(c, start_llm=False)
        ensure_voice_routes(app)
        with serve_in_thread(app) as host:
            for mode in ("stub", "whisper"):
                if only and mode != only:
                    continue
                transcriber = ScriptedTranscriber(Path(tmp) / "said.txt") if mode == "stub" else None
                vs = VoiceServices(
                    c, stt_factory=(lambda lang, t=transcriber: StubSTTService(t, lang=lang)) if transcriber else None
                )
                vs.load_models()
                app.state.voice_services = vs
                t0 = time.monotonic()
                res = _client(host, mode, str(transcriber.path) if transcriber else None, n_turns)
                res["wall_s"] = round(time.monotonic() - t0, 1)
                traces = list(vs.recent_turns)[1:]  # without the warm-up turn
                res["server"] = {
                    key: _summary([t[key] for t in traces if t[key] is not None])
                    for key in ("eos_to_first_audio_ms", "stt_ms", "agent_first_sentence_ms", "tts_first_byte_ms")
                }
                results[mode] = res
                vs.close()
    s = results.get("stub")
    modes = [r for k, r in results.items() if k in ("stub", "whisper")]
    results["targets"] = {
        "stub_eos_to_first_audio_p50_le_700ms": bool(
            s and s["eos_to_first_audio_ms"]["p50"] is not None and s["eos_to_first_audio_ms"]["p50"] <= 700
        ),
        "barge_in_stop_p50_le_300ms": all(
            r["barge_in_stop_ms"]["p50"] is not None and r["barge_in_stop_ms"]["p50"] <= 300 for r in modes
        ),
        "zero_false_interruptions": all(r["false_interruptions"] == 0 for r in modes),
        "turns_ge_20": all(r["turns"] >= 20 for r in modes),
    }
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument(
        "--only",
        choices=["stub", "whisper", "stt", "turns"],
        help="stt: the Mandarin offline STT study; turns: turn taking with and without Smart Turn v3 (--lang zh)",
    )
    ap.add_argument("--turns", type=int, default=None, help="first N scripted questions only")
    ap.add_argument("--lang", choices=["en", "zh"], default="en", help="zh: Mandarin (evals/voice_zh.py)")
    ap.add_argument("--client", metavar="HOST:PORT", help=argparse.SUPPRESS)  # the viewer subprocess
    ap.add_argument("--mode", default="stub", help=argparse.SUPPRESS)
    ap.add_argument("--transcript-file", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--study", default="main", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        client_main(args.client, args.mode, args.transcript_file, args.turns, args.lang, args.study)
        return
    if args.lang == "zh":
        from evals import voice_zh

        zh = voice_zh.run(args.only, args.turns)
        print(json.dumps(zh, ensure_ascii=False, indent=None if args.json else 1))
        return
    res = run(args.only, args.turns)
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
        return
    for mode in ("stub", "whisper"):
        r = res.get(mode)
        if not r:
            continue
        print(
            f"[{mode}] turns={r['turns']} eos→first audio p50={r['eos_to_first_audio_ms']['p50']} ms "
            f"p95={r['eos_to_first_audio_ms']['p95']} ms | barge-in stop p50={r['barge_in_stop_ms']['p50']} ms "
            f"p95={r['barge_in_stop_ms']['p95']} ms (commit p50={r['barge_in_commit_ms']['p50']} ms) | "
            f"false interruptions={r['false_interruptions']}/{r['backchannels_and_noises']} "
            f"| missed={r['missed_interruptions']} "
            f"| audio after stop={r['audio_after_stop']} | {r['wall_s']} s"
        )
    print(json.dumps(res, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
