"""Execution providers: CUDA only when a session really gets it, else CPU, and why.

onnxruntime-gpu lists CUDA (and TensorRT) among its available providers even on a machine
without a GPU or without the CUDA libraries; the session then silently runs on CPU. So we ask
for CUDA only when it is listed, and then believe only ``session.get_providers()``.
"""

from __future__ import annotations

import warnings
from typing import Any

import onnxruntime as ort

from zoo_runtime.errors import BundleError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")


def session_options(threads: int | None) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    # Warnings (such as shape-annotation notes at run time) are not for an end user's terminal.
    opts.log_severity_level = 3
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


class SessionFactory:
    """Builds every session of one bundle on the same provider, decided by the first session.

    ``provider`` is what the sessions run on; ``provider_note`` says why it is not what was asked
    for (None when it is).
    """

    def __init__(self, device: str = "auto", threads: int | None = None):
        if device not in DEVICES:
            raise BundleError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise BundleError(f"threads {threads!r}: expected a positive integer or None")
        self.device = device
        self.threads = threads
        self.provider: str | None = None
        self.provider_note: str | None = None

    def create(self, data: bytes, name: str) -> ort.InferenceSession:
        if self.provider is None:
            return self._first(data, name)
        providers = [self.provider] if self.provider == CPU else [self.provider, CPU]
        return self._session(data, name, providers)

    # -------------------------------------------------------------------------------------------

    def _session(self, data: bytes, name: str, providers: list[str]) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(data, sess_options=session_options(self.threads), providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise BundleError(f"{name}: onnxruntime cannot load this graph ({_first_line(exc)})") from None

    def _first(self, data: bytes, name: str) -> ort.InferenceSession:
        available = list(ort.get_available_providers())
        if self.device == "cpu":
            self.provider, self.provider_note = CPU, None
            return self._session(data, name, [CPU])
        if CUDA not in available:
            self.provider = CPU
            self.provider_note = (
                f"CUDA asked for, but this onnxruntime build has no CUDA provider "
                f"(it lists {', '.join(available)}); running on CPU"
                if self.device == "cuda"
                else None  # "auto" on a CPU-only build got what it asked for: the best there is
            )
            return self._session(data, name, [CPU])
        reason = ""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                session = ort.InferenceSession(data, sess_options=session_options(self.threads), providers=[CUDA, CPU])
            except Exception as exc:
                session, reason = None, _first_line(exc)
        reason = reason or "; ".join(_first_line(w.message) for w in caught)
        got = session.get_providers() if session is not None else []
        if got and got[0] == CUDA:
            self.provider, self.provider_note = CUDA, None
            return session
        self.provider = CPU
        self.provider_note = (
            "onnxruntime lists CUDAExecutionProvider but the session did not get it "
            f"({reason or 'no usable GPU or CUDA/cuDNN libraries'}); running on CPU"
        )
        return session if got else self._session(data, name, [CPU])


def _first_line(exc: Any) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
