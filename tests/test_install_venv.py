"""scripts/install_venv.py hands uv the indexes, find-links and constraints pip is configured with."""

import importlib.util
import stat
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install_venv.py"
spec = importlib.util.spec_from_file_location("install_venv", SCRIPT)
assert spec is not None and spec.loader is not None
install_venv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_venv)


def fake_pip(folder: Path, config_lines: list[str]) -> Path:
    """A `pip` whose `config list` prints ``config_lines``, as pip prints its settings."""
    pip = folder / "pip"
    printed = "\n".join(config_lines)
    pip.write_text(f"#!{sys.executable}\nprint({printed!r})\n")
    pip.chmod(pip.stat().st_mode | stat.S_IEXEC)
    return pip


def test_pip_settings_read_its_files_and_let_its_environment_win(tmp_path):
    pip = fake_pip(
        tmp_path,
        [
            "global.extra-index-url='https://mirror.invalid/a/simple https://mirror.invalid/b/simple'",
            "global.find-links='/wheels/from/file'",
            "global.constraint='/etc/pins.txt'",
            ":env:.find-links='/wheels/from/env'",
            ":env:.default-timeout='180'",
        ],
    )
    assert install_venv.pip_settings(pip) == {
        "extra-index-url": "https://mirror.invalid/a/simple https://mirror.invalid/b/simple",
        "find-links": "/wheels/from/env",
        "constraint": "/etc/pins.txt",
        "default-timeout": "180",
    }


def test_uv_gets_each_listed_value_as_its_own_option_and_picks_the_best_match_as_pip_does(tmp_path):
    settings = {
        "index-url": "https://index.invalid/simple",
        "extra-index-url": "https://mirror.invalid/a/simple https://mirror.invalid/b/simple",
        "find-links": "/wheels",
        "constraint": "/etc/pins.txt",
        "default-timeout": "180",  # nothing in uv's install to hand it to
    }
    assert install_venv.uv_arguments(settings) == [
        "--index-strategy",
        "unsafe-best-match",
        "--index-url",
        "https://index.invalid/simple",
        "--extra-index-url",
        "https://mirror.invalid/a/simple",
        "--extra-index-url",
        "https://mirror.invalid/b/simple",
        "--find-links",
        "/wheels",
        "--constraint",
        "/etc/pins.txt",
    ]
    assert install_venv.uv_arguments({}) == ["--index-strategy", "unsafe-best-match"]  # no pip config: uv's defaults


def test_a_folder_without_a_venv_is_a_usage_error_that_names_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        install_venv.main([str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    assert f"{tmp_path / 'nowhere'}: no virtual environment with pip there" in capsys.readouterr().err
