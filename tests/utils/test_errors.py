"""mflag_monai.utils.errors.concise_errors: an input error that ends a run prints one ``error:`` line on a line of
its own, exits 2 after the exit handlers ran, and leaves no traceback in the logs; a bug keeps its traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = """
import atexit, logging, sys
from tqdm import tqdm
from mflag_monai.utils.errors import InputError, concise_errors

logging.basicConfig(stream=sys.stdout, level=logging.INFO)
concise_errors(debug=False)
atexit.register(lambda: print("exit handler ran", flush=True))
bar = tqdm(total=4, desc="Training")
bar.update(1)
error = {error}
try:
    raise error
except Exception as err:
    logging.getLogger("ignite").exception("Engine run is terminating due to exception: %s", err)
raise error
"""


def run(error: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT.format(error=error)))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)


def test_an_input_error_is_one_line_exit_2_without_tracebacks(tmp_path: Path) -> None:
    result = run('InputError("loss is nan at epoch 1", "--learning_rate")', tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert "Engine run is terminating due to exception: loss is nan" in result.stdout  # the log keeps the message
    assert "exit handler ran" in result.stdout
    lines = result.stderr.replace("\r", "\n").splitlines()
    assert lines[-1].startswith("error: loss is nan at epoch 1 (--learning_rate)")  # not glued to the bar


def test_a_bug_keeps_its_traceback_and_exit_1(tmp_path: Path) -> None:
    result = run('ZeroDivisionError("a bug")', tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "Traceback" in result.stdout
