"""Install the project, with its extras, into a virtual environment: with uv when it can be had, else with pip.

    python3 -m venv .venv && python3 scripts/install_venv.py .venv     # what `make install` runs

uv installs the same packages about 3.6 times faster than pip (benchmarks/RESULTS.md, "Installing the project"):
the minute and a half that opened every fresh `make demo` and `make test` becomes under half a minute. uv does
not read pip's configuration, so the package indexes, find-links folders, constraint files and certificate that
pip is configured with here (pip.conf or PIP_* variables) are handed to it, and its resolver is told to pick the
best version across all indexes, as pip does. Where uv cannot be installed or its install fails, pip installs as
before, so the speed-up never costs a working setup.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ".[all]"
CONSTRAINTS = ROOT / "constraints.txt"
# pip's setting -> (uv's option, whether the setting is a list separated by whitespace)
PIP_TO_UV = {
    "index-url": ("--index-url", False),
    "extra-index-url": ("--extra-index-url", True),
    "find-links": ("--find-links", True),
    "constraint": ("--constraint", True),
}


def pip_settings(pip: Path) -> dict[str, str]:
    """pip's configured values by name (``find-links``, ...): its environment variables over its files, as pip
    itself reads them."""
    listed = subprocess.run([str(pip), "config", "list"], capture_output=True, text=True, check=False).stdout
    settings: dict[str, str] = {}
    from_env: dict[str, str] = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        scope, _, name = key.rpartition(".")
        value = value.strip().strip("'\"")
        (from_env if scope == ":env:" else settings)[name] = value
    return settings | from_env


def uv_arguments(settings: dict[str, str]) -> list[str]:
    """uv pip install's options for pip's settings."""
    arguments = ["--index-strategy", "unsafe-best-match"]
    for name, (option, is_list) in PIP_TO_UV.items():
        value = settings.get(name, "")
        for item in value.split() if is_list else [value] if value else []:
            arguments += [option, item]
    return arguments


def install_with_uv(venv: Path) -> bool:
    bin_dir = venv / "bin"
    pip = bin_dir / "pip"
    if subprocess.run([str(pip), "install", "-q", "uv"], check=False).returncode != 0:
        print("install: uv could not be installed; installing with pip", file=sys.stderr)
        return False
    settings = pip_settings(pip)
    environment = dict(os.environ)
    if settings.get("cert"):
        environment["SSL_CERT_FILE"] = settings["cert"]
    command = [str(bin_dir / "uv"), "pip", "install", "--quiet", "--python", str(bin_dir / "python")]
    command += [*uv_arguments(settings), "--constraint", str(CONSTRAINTS), "--editable", PROJECT]
    if subprocess.run(command, cwd=ROOT, env=environment, check=False).returncode != 0:
        print("install: uv's install failed (above); installing with pip", file=sys.stderr)
        return False
    return True


def install_with_pip(venv: Path) -> int:
    pip = str(venv / "bin" / "pip")
    subprocess.run([pip, "install", "-q", "--upgrade", "pip"], check=False)
    command = [pip, "install", "-q", "--constraint", str(CONSTRAINTS), "--editable", PROJECT]
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("venv", type=Path, help="the virtual environment to install into (made by python3 -m venv)")
    parser.add_argument("--pip", action="store_true", help="install with pip only, as before uv")
    args = parser.parse_args(argv)
    if not (args.venv / "bin" / "pip").is_file():
        parser.error(f"{args.venv}: no virtual environment with pip there (make one with: python3 -m venv {args.venv})")
    if not args.pip and install_with_uv(args.venv):
        return 0
    return 0 if install_with_pip(args.venv) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
