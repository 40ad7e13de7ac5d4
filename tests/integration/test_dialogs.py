"""
The protocol dialogues of tests/dialogs/*.dialog, one pytest case per
file, run by tests/dialogs/run.py against $BRIDGEHEAD_BIN (see that file
for the dialogue syntax).  A failure shows the step, what was wanted and
what came, and the server's log.
"""

import importlib.util
from pathlib import Path

import pytest

DIALOGS = Path(__file__).resolve().parents[1] / "dialogs"

_spec = importlib.util.spec_from_file_location("dialog_runner", DIALOGS / "run.py")
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)

FILES = sorted(DIALOGS.glob("*.dialog"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_dialog(path):
    try:
        runner.run_dialog(path)
    except runner.DialogError as e:
        pytest.fail(str(e), pytrace=False)
