"""The code corpus builder on a tiny committed sdist (tests/fixtures/code_corpus): pinned hashes,
deterministic extraction and filters, byte-identical rebuilds, and the committed manifest's
agreement with its config and tokenizer. No test touches the network."""

from __future__ import annotations

import dataclasses
import http.client
import io
import json
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest
from test_cli_inputs import run_cli
from tokenizers import Tokenizer

from momentum_interp import corpus_command
from momentum_interp.cli import main
from momentum_interp.data import EOT, train_bpe_tokenizer
from momentum_interp.data.code_corpus import (
    CONFIG_PATH,
    CORPUS_PATH,
    DOWNLOADS_DIR,
    MANIFEST_PATH,
    TOKENIZER_PATH,
    ChecksumError,
    DownloadError,
    archive_members,
    build_corpus,
    collect_documents,
    fetch_archives,
    load_corpus_config,
    load_manifest,
    read_documents,
    sha256_of,
    verify_archive,
    write_documents,
)

FIXTURES = Path(__file__).parent / "fixtures" / "code_corpus"
ARCHIVE = FIXTURES / "tinypkg-0.1.tar.gz"
CONFIG = FIXTURES / "tiny.toml"
ARCHIVE_SHA256 = "543bd038bdb2a82aab4fd6eacac264b7bc74eacabe65d0a8177c845305d58c4b"  # sha256sum
CORE = '"""Tiny arithmetic."""\n\n\ndef add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n'
# What the filters keep of the archive, by hand: setup.py, core.py and util.py; vendored/core.py
# is core.py's duplicate and sorts after it.
EXPECTED = [
    (
        "tinypkg-0.1/setup.py",
        'from setuptools import setup\n\nsetup(name="tinypkg", version="0.1")\n',
    ),
    ("tinypkg-0.1/tinypkg/core.py", CORE),
    ("tinypkg-0.1/tinypkg/util.py", "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n"),
]
SKIPPED = {
    "not_source": 2,  # PKG-INFO, README.txt
    "empty": 1,  # tinypkg/__init__.py
    "too_large": 1,  # tinypkg/table.py, 1076 bytes > 1024
    "not_utf8": 1,  # tinypkg/latin1.py
    "has_eot": 1,  # tinypkg/prompt.py
    "duplicate": 1,  # tinypkg/vendored/core.py
}


def _config_with(tmp_path: Path, **replace: str) -> Path:
    """The fixture config with some of its package's values replaced, written under tmp_path."""
    text = CONFIG.read_text()
    config = load_corpus_config(CONFIG)
    for key, value in replace.items():
        text = text.replace(f'{key} = "{getattr(config.packages[0], key)}"', f'{key} = "{value}"')
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_fixture_archive_is_the_pinned_one():
    config = load_corpus_config(CONFIG)
    assert sha256_of(ARCHIVE) == ARCHIVE_SHA256 == config.packages[0].sha256
    verify_archive(ARCHIVE, ARCHIVE_SHA256)


def test_archive_members_drop_the_top_folder_and_sort():
    names = [name for name, _ in archive_members(ARCHIVE)]
    assert names == sorted(names)
    assert names[:3] == ["PKG-INFO", "README.txt", "setup.py"]
    assert len(names) == 10 and "tinypkg/vendored/core.py" in names


def test_zip_gives_the_same_members_as_tar(tmp_path):
    members = archive_members(ARCHIVE)
    path = tmp_path / "tinypkg-0.1.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("tinypkg-0.1/", "")  # a directory entry, skipped
        for name, data in reversed(members):  # order in the archive does not matter
            archive.writestr(f"tinypkg-0.1/{name}", data)
    assert archive_members(path) == members


def test_filters_keep_the_expected_documents():
    config = load_corpus_config(CONFIG)
    collected = collect_documents([(config.packages[0], ARCHIVE)], config)
    assert collected.documents == EXPECTED
    assert collected.skipped == SKIPPED
    text_bytes = sum(len(text.encode()) for _, text in EXPECTED)
    assert collected.per_package == {"tinypkg": {"documents": 3, "text_bytes": text_bytes}}


def test_duplicates_across_packages_keep_the_first_path(tmp_path):
    config = load_corpus_config(CONFIG)
    other = dataclasses.replace(config.packages[0], name="atiny")  # sorts first
    collected = collect_documents([(config.packages[0], ARCHIVE), (other, ARCHIVE)], config)
    assert [name for name, _ in collected.documents] == [
        name.replace("tinypkg-0.1", "atiny-0.1") for name, _ in EXPECTED
    ]
    assert collected.skipped["duplicate"] == 1 + 4  # atiny's vendored copy, all of tinypkg's


def test_build_twice_gives_identical_bytes(tmp_path):
    config = load_corpus_config(CONFIG)
    builds = [
        build_corpus(
            config, FIXTURES, tmp_path / f"{i}" / "c.jsonl.xz", tmp_path / f"{i}" / "t.json"
        )
        for i in range(2)
    ]
    a, b = builds
    assert a.corpus_sha256 == b.corpus_sha256 == sha256_of(b.corpus_path)
    assert a.tokenizer.path.read_bytes() == b.tokenizer.path.read_bytes()
    assert a.tokenizer.sha256 == sha256_of(a.tokenizer.path)
    assert a.to_dict() == b.to_dict()
    assert list(read_documents(a.corpus_path)) == EXPECTED
    assert (a.documents, a.text_bytes) == (3, sum(len(t.encode()) for _, t in EXPECTED))
    tokenizer = Tokenizer.from_file(str(a.tokenizer.path))
    assert tokenizer.get_vocab_size() == 300 and tokenizer.token_to_id(EOT) == 0
    assert a.tokenizer.tokens == sum(len(tokenizer.encode(text).ids) + 1 for _, text in EXPECTED)


def test_build_without_tokenizer_writes_the_same_corpus_and_no_tokenizer(tmp_path):
    config = load_corpus_config(CONFIG)
    full = build_corpus(config, FIXTURES, tmp_path / "a" / "c.jsonl.xz", tmp_path / "a" / "t.json")
    corpus_only = build_corpus(config, FIXTURES, tmp_path / "b" / "c.jsonl.xz")
    assert corpus_only.corpus_sha256 == full.corpus_sha256 and corpus_only.tokenizer is None
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["c.jsonl.xz"]
    record = corpus_only.to_dict()
    assert "tokenizer" not in record and "tokens" not in record
    assert record["corpus"] == full.to_dict()["corpus"]


def test_write_read_round_trip_sorts_by_path(tmp_path):
    docs = [("b/x.py", "ü = 1\n"), ("a/y.py", 'print("\\n")\n'), ("a/z.py", "")]
    sha = write_documents(docs, tmp_path / "c.jsonl.xz", preset=1)
    assert list(read_documents(tmp_path / "c.jsonl.xz")) == sorted(docs)
    assert write_documents(reversed(docs), tmp_path / "d.jsonl.xz", preset=1) == sha


def test_tokenizer_on_texts_equals_tokenizer_on_files(tmp_path):
    paths = []
    for name, text in EXPECTED:
        paths.append(tmp_path / name.replace("/", "_"))
        paths[-1].write_text(text)
    on_files = train_bpe_tokenizer(paths, vocab_size=300, min_frequency=1)
    on_texts = train_bpe_tokenizer(vocab_size=300, min_frequency=1, texts=[t for _, t in EXPECTED])
    assert on_texts.to_str() == on_files.to_str()
    with pytest.raises(ValueError, match="nothing to train"):
        train_bpe_tokenizer()


def test_wrong_pin_names_file_and_both_hashes(tmp_path):
    wrong = "0" * 64
    config = load_corpus_config(_config_with(tmp_path, sha256=wrong))
    with pytest.raises(ChecksumError) as error:
        build_corpus(config, FIXTURES, tmp_path / "c.jsonl.xz", tmp_path / "t.json")
    assert str(ARCHIVE) in str(error.value)
    assert wrong in str(error.value) and ARCHIVE_SHA256 in str(error.value)
    assert not (tmp_path / "c.jsonl.xz").exists()


def test_missing_archive_is_named(tmp_path):
    config = load_corpus_config(CONFIG)
    with pytest.raises(FileNotFoundError, match="tinypkg-0.1.tar.gz"):
        build_corpus(config, tmp_path, tmp_path / "c.jsonl.xz", tmp_path / "t.json")


def test_fetch_downloads_verifies_and_caches(tmp_path):
    """`fetch_archives` through a file:// URL (urllib, no network): kept only with the right hash."""
    url = ARCHIVE.resolve().as_uri()
    downloads = tmp_path / "downloads"
    fetch_archives(load_corpus_config(_config_with(tmp_path, url=url)), downloads, progress=False)
    assert sha256_of(downloads / ARCHIVE.name) == ARCHIVE_SHA256
    bad = load_corpus_config(_config_with(tmp_path, url=url, sha256="f" * 64))
    with pytest.raises(ChecksumError):
        fetch_archives(bad, tmp_path / "other", progress=False)
    assert list((tmp_path / "other").iterdir()) == []
    gone = load_corpus_config(_config_with(tmp_path, url=(tmp_path / "gone.tar.gz").as_uri()))
    with pytest.raises(DownloadError, match="could not download tinypkg-0.1.tar.gz"):
        fetch_archives(gone, tmp_path / "third", progress=False)
    assert list((tmp_path / "third").iterdir()) == []


class _TruncatedResponse(io.BytesIO):
    """A response that announces 2 MiB, sends 1 MiB and then breaks off, as http.client does."""

    headers = {"Content-Length": str(2 * 2**20)}

    def read(self, size=-1):
        if self.tell() >= 2**20:
            raise http.client.IncompleteRead(b"", 2**20)
        return super().read(size)


def test_fetch_interrupted_download_is_a_download_error_and_leaves_no_part(tmp_path, monkeypatch):
    opened = []

    def urlopen(url, timeout):
        opened.append(url)
        return _TruncatedResponse(b"x" * 2**20)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    config = load_corpus_config(CONFIG)
    with pytest.raises(DownloadError, match="could not download tinypkg-0.1.tar.gz") as error:
        fetch_archives(config, tmp_path, progress=False)
    assert isinstance(error.value.__cause__, http.client.IncompleteRead)
    assert opened == [config.packages[0].url] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('sha256 = "543b', 'sha256 = "XYZ'), "64 lowercase hex"),
        (('filename = "tinypkg-0.1.tar.gz"', 'filename = "tinypkg.whl"'), "filename must be"),
        (("every = 1", "every = 0"), "tokenizer_every must be a positive"),
        (("xz_preset = 6", "xz_preset = 12"), "xz_preset must be 0..9"),
        (("vocab_size = 300", "vocab_size = 100"), "vocab_size must be >= 257"),
        (("[tokenizer]", "[tokeniser]"), "unknown tables"),
        (('url = "', 'homepage = "x"\nurl = "'), "unknown keys"),
    ],
)
def test_config_errors_are_clear(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(CONFIG.read_text().replace(*edit))
    with pytest.raises(ValueError, match=message):
        load_corpus_config(path)


def _cli_build(tmp_path: Path, *extra: str) -> tuple[int, Path]:
    """`corpus build` on the fixture (cached: nothing to fetch) with assets under tmp_path/assets."""
    downloads = tmp_path / "downloads"
    if not downloads.exists():
        shutil.copytree(FIXTURES, downloads)
    out, assets = tmp_path / "c.jsonl.xz", tmp_path / "assets"
    argv = ["corpus", "build", "--config", str(CONFIG), "--out", str(out), "--quiet"]
    argv += ["--downloads", str(downloads), "--tokenizer", str(assets / "tokenizer.json")]
    return main([*argv, "--manifest", str(assets / "manifest.json"), *extra]), out


def test_cli_update_assets_writes_tokenizer_and_manifest(tmp_path, capsys):
    status, out = _cli_build(tmp_path, "--update-assets")
    assert status == 0
    manifest, tok = tmp_path / "assets" / "manifest.json", tmp_path / "assets" / "tokenizer.json"
    record = json.loads(manifest.read_text())
    assert record["corpus"]["sha256"] == sha256_of(out)
    assert record["corpus"]["documents"] == 3 and record["filters"]["skipped_files"] == SKIPPED
    assert record["tokenizer"]["sha256"] == sha256_of(tok)
    assert record["provenance"]["command"].startswith("momentum-interp corpus build")
    assert list(read_documents(out)) == EXPECTED
    printed = capsys.readouterr().out
    assert "3 documents" in printed and "previous manifest" not in printed
    # Again, over its own assets: the same bytes, and it says so.
    tokenizer_bytes = tok.read_bytes()
    assert _cli_build(tmp_path, "--update-assets")[0] == 0
    assert tok.read_bytes() == tokenizer_bytes
    assert "changed from the previous manifest: nothing" in capsys.readouterr().out


def test_cli_default_verifies_and_writes_no_asset(tmp_path, capsys):
    assert _cli_build(tmp_path, "--update-assets")[0] == 0
    assets = {p: p.read_bytes() for p in (tmp_path / "assets").iterdir()}
    record = json.loads((tmp_path / "assets" / "manifest.json").read_text())
    (tmp_path / "c.jsonl.xz").unlink()
    capsys.readouterr()
    status, out = _cli_build(tmp_path)
    assert status == 0 and sha256_of(out) == record["corpus"]["sha256"]
    assert {p: p.read_bytes() for p in (tmp_path / "assets").iterdir()} == assets
    printed = capsys.readouterr()
    matched = [line for line in printed.out.splitlines() if line.startswith("matches ")]
    assert len(matched) == 4 and printed.err == ""
    assert f"corpus sha256 {record['corpus']['sha256']}" in matched[0]
    assert f"tokenizer sha256 {record['tokenizer']['sha256']}" in matched[3]


@pytest.mark.parametrize("tamper", ["documents", "tokenizer"])
def test_cli_mismatch_exits_1_naming_what_differs(tmp_path, capsys, tamper):
    assert _cli_build(tmp_path, "--update-assets")[0] == 0
    manifest, tok = tmp_path / "assets" / "manifest.json", tmp_path / "assets" / "tokenizer.json"
    record = json.loads(manifest.read_text())
    if tamper == "documents":
        record["corpus"]["documents"] = 4
        manifest.write_text(json.dumps(record))
    else:
        tok.write_text(tok.read_text() + "\n")
    assets = {p: p.read_bytes() for p in (tmp_path / "assets").iterdir()}
    (tmp_path / "c.jsonl.xz").unlink()
    capsys.readouterr()
    status, out = _cli_build(tmp_path)
    assert status == 1 and sha256_of(out) == record["corpus"]["sha256"]  # written all the same
    assert {p: p.read_bytes() for p in (tmp_path / "assets").iterdir()} == assets
    printed = capsys.readouterr()
    differ = "documents 3 (manifest: 4)" if tamper == "documents" else "tokenizer sha256"
    assert printed.err.count("\n") == 1 and differ in printed.err
    assert "--update-assets" in printed.err and "corpus sha256" not in printed.err
    assert sum(line.startswith("matches ") for line in printed.out.splitlines()) == 3


@pytest.mark.parametrize("missing", ["manifest.json", "tokenizer.json"])
def test_cli_verify_without_assets_exits_2_before_downloading(tmp_path, capsys, missing):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "manifest.json").write_text(MANIFEST_PATH.read_text())
    (assets / "tokenizer.json").write_text("{}")
    (assets / missing).unlink()
    downloads = tmp_path / "downloads"
    argv = ["corpus", "build", "--config", str(CONFIG), "--downloads", str(downloads)]
    argv += [
        "--tokenizer",
        str(assets / "tokenizer.json"),
        "--manifest",
        str(assets / "manifest.json"),
    ]
    assert main([*argv, "--out", str(tmp_path / "c.xz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and missing.split(".")[0] in err and "--update-assets" in err
    assert not downloads.exists()


def test_load_manifest_names_missing_keys(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"corpus": {"sha256": "0" * 64, "documents": 3}}))
    with pytest.raises(ValueError, match=r"no corpus\.text_bytes, tokenizer\.sha256"):
        load_manifest(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="is not JSON"):
        load_manifest(path)
    assert load_manifest(MANIFEST_PATH)["corpus"]["documents"] > 0


def test_cli_defaults_are_the_corpus_modules_paths():
    """corpus_command.py repeats them so that it need not import the corpus module to parse arguments."""
    in_cli = [
        corpus_command.CORPUS_CONFIG,
        corpus_command.CORPUS_OUT,
        corpus_command.CORPUS_DOWNLOADS,
        corpus_command.CORPUS_TOKENIZER,
    ]
    in_corpus = [CONFIG_PATH, CORPUS_PATH, DOWNLOADS_DIR, TOKENIZER_PATH, MANIFEST_PATH]
    assert [*in_cli, corpus_command.CORPUS_MANIFEST] == [str(path) for path in in_corpus]


@pytest.mark.parametrize("option", ["--out", "--tokenizer", "--manifest"])
def test_cli_output_path_that_is_a_directory_exits_2(tmp_path, option):
    done, _ = run_cli("corpus", "build", "--config", str(CONFIG), option, str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "is a directory" in done.stderr


def test_cli_missing_config_exits_2(tmp_path):
    done, _ = run_cli("corpus", "build", "--config", str(tmp_path / "none.toml"))
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_cli_bad_config_exits_2_before_downloading(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.read_text().replace('sha256 = "543b', 'sha256 = "XYZ'))
    downloads = tmp_path / "downloads"
    args = ["corpus", "build", "--config", str(bad), "--downloads", str(downloads)]
    done = subprocess.run(
        [sys.executable, "-m", "momentum_interp.cli", *args, "--out", str(tmp_path / "c.xz")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "64 lowercase hex" in done.stderr
    assert not downloads.exists()


def test_committed_manifest_matches_config_and_tokenizer():
    manifest = json.loads(MANIFEST_PATH.read_text())
    config = load_corpus_config(CONFIG_PATH)
    pinned = [(p.name, p.version, p.filename, p.sha256, p.url) for p in config.packages]
    keys = ("name", "version", "filename", "sha256", "url")
    assert [tuple(p[k] for k in keys) for p in manifest["packages"]] == pinned
    assert manifest["tokenizer"]["sha256"] == sha256_of(TOKENIZER_PATH)
    tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
    assert manifest["tokenizer"]["vocab_size"] == tokenizer.get_vocab_size() == config.vocab_size
    assert tokenizer.token_to_id(EOT) == 0
    assert manifest["corpus"]["documents"] == sum(p["documents"] for p in manifest["packages"])
    assert manifest["corpus"]["text_bytes"] == sum(p["text_bytes"] for p in manifest["packages"])


def test_built_corpus_matches_committed_manifest():
    """Where the corpus has been built (it is git-ignored), it is the one the manifest describes."""
    if not CORPUS_PATH.is_file():
        pytest.skip(f"no built corpus at {CORPUS_PATH} (`momentum-interp corpus build` makes it)")
    manifest = json.loads(MANIFEST_PATH.read_text())
    assert sha256_of(CORPUS_PATH) == manifest["corpus"]["sha256"]
    assert CORPUS_PATH.stat().st_size == manifest["corpus"]["bytes"]
