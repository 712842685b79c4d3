"""Signed bundles: OpenSSF Model Signing (the ``model-signing`` package), elliptic-curve key pairs, offline.

A signed bundle holds ``model.sig`` beside its files: a Sigstore bundle whose signed payload lists the
sha256 of every other file of the bundle, manifest.json included (docs/BUNDLE.md, docs/SECURITY.md).
``model_signing`` is imported only when a bundle is signed or verified against keys, so an embedder
who never does either installs nothing more (``pip install 'model-zoo[signing]'`` brings it).

Verification binds the signature to the bytes zoo_runtime uses: ``model_signing`` checks the
signature and the files on disk, and then the signed digests are compared with the digests that
zoo_runtime itself computed of the bytes it parsed (the manifest) and built sessions from (the graphs).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_runtime.bundle import Bundle, read_bundle_file
from zoo_runtime.errors import BundleError

SIGNATURE_FILE = "model.sig"
FINGERPRINT_CHARS = 16
MAX_SIGNATURE_BYTES = 16 << 20  # a signature lists one digest per file: kilobytes
_INSTALL_HINT = "signing needs the model-signing package: pip install 'model-zoo[signing]'"


@dataclass(frozen=True)
class SignatureStatus:
    """What a loaded bundle's signature says: absent, present but not checked, or verified by a trusted key."""

    signed: bool
    verified: bool = False
    fingerprint: str | None = None  # the signing key's, as model_signing hints it: sha256 of its PEM, shortened

    def badge(self) -> str:
        """A short text for people: "unsigned", "signed (key 1a2b…)", "signed, verified (key 1a2b…)"."""
        if not self.signed:
            return "unsigned"
        key = f"key {self.fingerprint}" if self.fingerprint else "unknown key"
        return f"signed, verified ({key})" if self.verified else f"signed, not verified ({key})"


def _model_signing() -> Any:
    try:
        import model_signing
        import model_signing.hashing
        import model_signing.signing
        import model_signing.verifying
    except ImportError:
        raise BundleError(_INSTALL_HINT) from None
    return model_signing


def key_fingerprint(public_key_pem: bytes) -> str:
    """The fingerprint model_signing records for a key (sha256 of its SubjectPublicKeyInfo PEM), shortened."""
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise BundleError(_INSTALL_HINT) from None
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"not a PEM public key ({exc})") from None
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()[:FINGERPRINT_CHARS]


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        if not path.is_file():
            raise BundleError(f"{path}: no such {what} file")
        return path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def _hashing_config(ms: Any) -> Any:
    # The signature file cannot sign itself; git's own files are left out as the model_signing CLI does,
    # so that signatures made by either side verify on the other.
    return ms.hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=True)


def sign_bundle(bundle_dir: str | os.PathLike[str], private_key: str | os.PathLike[str], password: str | None = None) -> str:
    """Write ``model.sig`` into ``bundle_dir`` over every file in it; returns the key's fingerprint."""
    ms = _model_signing()
    bundle_dir, private_key = Path(bundle_dir), Path(private_key)
    check_private_key(private_key, password)
    config = ms.signing.Config().use_elliptic_key_signer(private_key=private_key, password=password)
    config.set_hashing_config(_hashing_config(ms)).sign(bundle_dir, bundle_dir / SIGNATURE_FILE)
    hint = _payload_and_hint(bundle_dir / SIGNATURE_FILE, (bundle_dir / SIGNATURE_FILE).read_bytes())[1]
    return hint or ""


def check_private_key(private_key: Path, password: str | None = None) -> None:
    """Refuse a missing, unreadable or non-EC private key before anything is written."""
    data = _read_key_file(private_key, "private key")
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise BundleError(_INSTALL_HINT) from None
    try:
        key = serialization.load_pem_private_key(data, password=password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{private_key}: not a usable PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BundleError(f"{private_key}: an elliptic-curve key is needed (OpenSSF Model Signing's key method)")


def _payload_and_hint(sig_path: Path, data: bytes) -> tuple[dict[str, Any], str | None]:
    """The in-toto statement a signature carries and its key hint, read without checking anything."""
    try:
        bundle = json.loads(data)
        payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"], validate=True))
        hint = ((bundle.get("verificationMaterial") or {}).get("publicKey") or {}).get("hint")
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BundleError(f"{sig_path}: not an OpenSSF Model Signing signature") from None
    if not isinstance(payload, dict):
        raise BundleError(f"{sig_path}: not an OpenSSF Model Signing signature")
    return payload, (hint[:FINGERPRINT_CHARS] if isinstance(hint, str) and hint else None)


def _signed_digests(sig_path: Path, payload: dict[str, Any]) -> dict[str, str]:
    resources = (payload.get("predicate") or {}).get("resources")
    if not isinstance(resources, list):
        raise BundleError(f"{sig_path}: the signature lists no files")
    digests = {}
    for item in resources:
        if not isinstance(item, dict) or item.get("algorithm") != "sha256":
            raise BundleError(f"{sig_path}: the signature must use sha256 file digests (it uses {item!r})")
        digests[str(item.get("name"))] = str(item.get("digest"))
    return digests


def signature_status(bundle_dir: Path) -> SignatureStatus:
    """Whether a bundle carries a signature, and the key it names; nothing is verified."""
    sig_path = bundle_dir / SIGNATURE_FILE
    if not sig_path.is_file() or sig_path.is_symlink():
        return SignatureStatus(signed=False)
    try:
        data = read_bundle_file(bundle_dir, SIGNATURE_FILE, MAX_SIGNATURE_BYTES)
    except BundleError:
        return SignatureStatus(signed=True)  # present but unreadable: verifying it will say why
    try:
        return SignatureStatus(signed=True, fingerprint=_payload_and_hint(sig_path, data)[1])
    except BundleError:
        return SignatureStatus(signed=True)


def verify_bundle(
    bundle_dir: Path,
    trusted_keys: Iterable[str | os.PathLike[str]],
    used_digests: Mapping[str, str],
) -> SignatureStatus:
    """Verify ``bundle_dir/model.sig`` with any of ``trusted_keys``; refuse (BundleError) unless one verifies.

    ``used_digests``: file name -> sha256 of the bytes the caller verified and uses (manifest.json and
    every listed file); the signed digests must be exactly these.
    """
    keys = [Path(k) for k in trusted_keys]
    sig_path = bundle_dir / SIGNATURE_FILE
    if sig_path.is_symlink() or not sig_path.is_file():
        raise BundleError(f"{bundle_dir}: the bundle is not signed ({SIGNATURE_FILE} missing) and trusted keys are configured")
    ms = _model_signing()
    key_pems = {key: _read_key_file(key, "public key") for key in keys}
    sig_bytes = read_bundle_file(bundle_dir, SIGNATURE_FILE, MAX_SIGNATURE_BYTES)
    payload, hint = _payload_and_hint(sig_path, sig_bytes)
    signed = _signed_digests(sig_path, payload)
    # Verify the very bytes parsed above: model_signing reads a path, so it gets a private copy.
    with tempfile.TemporaryDirectory(prefix="zoo-sig-") as tmp:
        copy = Path(tmp) / SIGNATURE_FILE
        copy.write_bytes(sig_bytes)
        reasons = []
        verified_by = None
        for key, pem in key_pems.items():
            try:
                fingerprint = key_fingerprint(pem)
            except BundleError as exc:
                raise BundleError(f"{key}: {exc}") from None
            if hint and hint != fingerprint:
                reasons.append(f"{key.name}: signed by another key")
                continue
            try:
                config = ms.verifying.Config().use_elliptic_key_verifier(public_key=key)
                config.set_hashing_config(_hashing_config(ms)).verify(bundle_dir, copy)
            except Exception as exc:  # model_signing raises ValueError, cryptography's InvalidSignature, ...
                text = str(exc).strip().splitlines()
                reasons.append(f"{key.name}: {text[0] if text else type(exc).__name__}")
                continue
            verified_by = fingerprint
            break
    if verified_by is None:
        raise BundleError(f"{sig_path}: the signature does not verify with any trusted key ({'; '.join(reasons)})")
    if signed != dict(used_digests):
        changed = sorted(set(signed) ^ set(used_digests) | {n for n in signed if signed[n] != used_digests.get(n)})
        raise BundleError(f"{sig_path}: the signed files differ from the bundle's verified files ({', '.join(changed)})")
    return SignatureStatus(signed=True, verified=True, fingerprint=verified_by)


def check_signature(bundle: Bundle, trusted_keys: Iterable[str | os.PathLike[str]] | None) -> SignatureStatus:
    """The signature status of a verified bundle; with trusted keys, a BundleError unless one of them signed it."""
    keys = list(trusted_keys or [])
    if bundle.lone:
        if keys:
            raise BundleError(f"{bundle.path}: a lone .onnx file cannot carry a signature, and trusted keys are configured")
        return SignatureStatus(signed=False)
    if not keys:
        return signature_status(bundle.path)
    return verify_bundle(bundle.path, keys, bundle.digests)
