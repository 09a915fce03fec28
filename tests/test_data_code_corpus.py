"""The code corpus builder on a tiny committed sdist (tests/fixtures/code_corpus): pinned hashes,
deterministic extraction and filters, byte-identical rebuilds, and the committed manifest's
agreement with its config and tokenizer. No test touches the network."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_cli_inputs import run_cli
from tokenizers import Tokenizer

from momentum_interp.cli import main
from momentum_interp.data import EOT, train_bpe_tokenizer
from momentum_interp.data.code_corpus import (
    CONFIG_PATH,
    CORPUS_PATH,
    MANIFEST_PATH,
    TOKENIZER_PATH,
    ChecksumError,
    DownloadError,
    archive_members,
    build_corpus,
    collect_documents,
    fetch_archives,
    load_corpus_config,
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
    assert a.tokenizer_path.read_bytes() == b.tokenizer_path.read_bytes()
    assert a.to_dict() == b.to_dict()
    assert list(read_documents(a.corpus_path)) == EXPECTED
    assert (a.documents, a.text_bytes) == (3, sum(len(t.encode()) for _, t in EXPECTED))
    tokenizer = Tokenizer.from_file(str(a.tokenizer_path))
    assert tokenizer.get_vocab_size() == 300 and tokenizer.token_to_id(EOT) == 0
    assert a.tokens == sum(len(tokenizer.encode(text).ids) + 1 for _, text in EXPECTED)


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


def test_cli_builds_offline_from_cached_archives(tmp_path, capsys):
    out, tok, manifest = tmp_path / "c.jsonl.xz", tmp_path / "t.json", tmp_path / "m.json"
    downloads = tmp_path / "downloads"
    shutil.copytree(FIXTURES, downloads)  # the archive is cached: nothing to fetch
    argv = ["corpus", "build", "--config", str(CONFIG), "--out", str(out), "--quiet"]
    argv += ["--downloads", str(downloads), "--tokenizer-out", str(tok)]
    assert main([*argv, "--manifest-out", str(manifest)]) == 0
    record = json.loads(manifest.read_text())
    assert record["corpus"]["sha256"] == sha256_of(out)
    assert record["corpus"]["documents"] == 3 and record["filters"]["skipped_files"] == SKIPPED
    assert record["tokenizer"]["sha256"] == sha256_of(tok)
    assert record["provenance"]["command"].startswith("momentum-interp corpus build")
    assert list(read_documents(out)) == EXPECTED
    assert "3 documents" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--out", "--tokenizer-out", "--manifest-out"])
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
