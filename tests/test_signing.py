"""Signed bundles (OpenSSF Model Signing, EC key pairs): zoo-export signs, zoo_runtime / zoo-run / the app verify.

Both directions against the package's own ``model_signing`` command-line tool: what zoo-export signs
verifies there, and what the tool signs verifies in zoo_runtime.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import zoo_runtime
from zoo_export import export_checkpoint
from zoo_export.cli import main as export_main
from zoo_runtime.cli import main as run_main
from zoo_runtime.errors import BundleError
from zoo_runtime.signing import SIGNATURE_FILE, key_fingerprint

MODEL_SIGNING_CLI = [sys.executable, "-m", "model_signing"]


def write_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    ours, ours_pub = write_key_pair(folder, "ours")
    other, other_pub = write_key_pair(folder, "other")
    return {"private": ours, "public": ours_pub, "other_private": other, "other_public": other_pub}


@pytest.fixture(scope="module")
def signed_bundle(tiny_checkpoint, keys, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("signed") / "lenet5"
    result = export_checkpoint(tiny_checkpoint("lenet5"), out, sign_key=keys["private"])
    assert result.passed and result.bundle is not None, result.error
    return result.bundle


def private_copy(bundle: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(bundle, dest)
    return dest


def test_export_signs_every_file_and_the_runtime_verifies(signed_bundle, keys):
    assert (signed_bundle / SIGNATURE_FILE).is_file()
    manifest = json.loads((signed_bundle / "manifest.json").read_text())
    assert SIGNATURE_FILE not in manifest["files"]  # the one file beside the listed ones (docs/BUNDLE.md)

    model = zoo_runtime.load(signed_bundle, trusted_keys=[keys["public"]])
    fingerprint = key_fingerprint(keys["public"].read_bytes())
    assert model.signature.signed and model.signature.verified
    assert model.signature.fingerprint == fingerprint
    assert model.signature.badge() == f"signed, verified (key {fingerprint})"

    unverified = zoo_runtime.load(signed_bundle)  # no keys configured: loads, says it was not checked
    assert unverified.signature.signed and not unverified.signature.verified
    assert unverified.signature.fingerprint == fingerprint


def test_bundle_signed_by_zoo_export_verifies_with_the_model_signing_cli(signed_bundle, keys):
    run = subprocess.run(
        [*MODEL_SIGNING_CLI, "verify", "key", str(signed_bundle), "--signature", str(signed_bundle / SIGNATURE_FILE),
         "--public_key", str(keys["public"])],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    wrong = subprocess.run(
        [*MODEL_SIGNING_CLI, "verify", "key", str(signed_bundle), "--signature", str(signed_bundle / SIGNATURE_FILE),
         "--public_key", str(keys["other_public"])],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert wrong.returncode != 0


def test_bundle_signed_by_the_model_signing_cli_verifies_in_zoo_runtime(tiny_bundle, keys, tmp_path):
    bundle = private_copy(tiny_bundle("lenet5"), tmp_path)
    run = subprocess.run(
        [*MODEL_SIGNING_CLI, "sign", "key", str(bundle), "--private_key", str(keys["private"]),
         "--signature", str(bundle / SIGNATURE_FILE)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    model = zoo_runtime.load(bundle, trusted_keys=[keys["public"]])
    assert model.signature.verified


def test_other_key_unsigned_and_altered_bundles_are_refused(signed_bundle, tiny_bundle, keys, tmp_path):
    with pytest.raises(BundleError, match=r"does not verify with any trusted key.*signed by another key"):
        zoo_runtime.load(signed_bundle, trusted_keys=[keys["other_public"]])
    # Any one of several trusted keys is enough.
    assert zoo_runtime.load(signed_bundle, trusted_keys=[keys["other_public"], keys["public"]]).signature.verified

    with pytest.raises(BundleError, match="not signed"):
        zoo_runtime.load(tiny_bundle("lenet5"), trusted_keys=[keys["public"]])

    edited = private_copy(signed_bundle, tmp_path / "edited")
    manifest_path = edited / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    # A field the manifest alone carries: an edited label would already be refused, as the graphs' metadata disagrees.
    manifest["metrics"] = dict(manifest["metrics"], forged=1.0)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    with pytest.raises(BundleError, match="does not verify"):
        zoo_runtime.load(edited, trusted_keys=[keys["public"]])

    added = private_copy(signed_bundle, tmp_path / "added")
    (added / "notes.txt").write_text("added after signing")
    with pytest.raises(BundleError, match="does not verify"):
        zoo_runtime.load(added, trusted_keys=[keys["public"]])


def test_signature_over_other_files_than_those_verified_is_refused(signed_bundle, keys, tmp_path, monkeypatch):
    """The signed digests must be those of the bytes zoo_runtime hashed, not merely of what is on disk later."""
    from zoo_runtime import bundle as bundle_module

    real_open = bundle_module.open_bundle

    def open_then_swap(path, **options):
        opened = real_open(path, **options)
        opened.digests["manifest.json"] = "0" * 64  # as if the manifest changed between hashing and verifying
        return opened

    monkeypatch.setattr(zoo_runtime, "open_bundle", open_then_swap)
    with pytest.raises(BundleError, match="signed files differ"):
        zoo_runtime.load(signed_bundle, trusted_keys=[keys["public"]])


def test_zoo_run_trusted_key_exit_codes(signed_bundle, tiny_bundle, keys, tmp_path, capsys):
    assert run_main([str(signed_bundle), "--trusted-key", str(keys["public"])]) == 0
    assert "signed, verified" in capsys.readouterr().out
    assert run_main([str(signed_bundle), "--trusted-key", str(keys["other_public"])]) == 1
    assert "does not verify" in capsys.readouterr().err
    assert run_main([str(tiny_bundle("lenet5")), "--trusted-key", str(keys["public"])]) == 1
    assert "not signed" in capsys.readouterr().err
    assert run_main([str(signed_bundle), "--trusted-key", str(tmp_path / "missing.pem")]) == 2
    assert "no such public key file" in capsys.readouterr().err


def test_zoo_export_bad_sign_key_is_a_usage_error_and_writes_nothing(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "bundle"
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("not a key\n")
    assert export_main([str(tiny_checkpoint("lenet5")), "--out", str(out), "--sign-key", str(not_a_key)]) == 2
    assert "not a usable PEM private key" in capsys.readouterr().err
    assert export_main([str(tiny_checkpoint("lenet5")), "--out", str(out), "--sign-key", str(tmp_path / "nope.pem")]) == 2
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    assert export_main([str(tiny_checkpoint("lenet5")), "--out", str(out), "--sign-key", str(rsa_key)]) == 2
    assert "elliptic-curve" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("bundle.*"))


def test_without_model_signing_installed_the_error_says_how_to_get_it(signed_bundle, keys, monkeypatch):
    for name in [m for m in sys.modules if m == "model_signing" or m.startswith("model_signing.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "model_signing", None)  # import fails as if not installed
    with pytest.raises(BundleError, match=r"pip install 'model-zoo\[signing\]'"):
        zoo_runtime.load(signed_bundle, trusted_keys=[keys["public"]])
    assert zoo_runtime.load(signed_bundle).signature.signed  # the status needs no model_signing


def test_zoo_serve_with_a_trusted_key_serves_only_bundles_signed_by_it(signed_bundle, tiny_bundle, keys):
    from zoo_serve import load_models

    report = load_models([signed_bundle, tiny_bundle("dcgan")], device="cpu", trusted_keys=[keys["public"]])
    assert list(report.models) == ["lenet5"]
    (problem,) = report.problems
    assert "not signed" in problem and "left out" in problem
    assert load_models([signed_bundle], device="cpu", trusted_keys=[keys["other_public"]]).models == {}
