"""``ipyassistant demo``: a tool round trip and a reply, printed, on the embedded server."""

from __future__ import annotations

from ipyassistant.cli import main
from ipyassistant.demo import run_demo


def test_the_scripted_demo_rolls_dice_and_replies(capsys):
    assert run_demo(None, None) == 0
    out = capsys.readouterr().out
    assert "model test" in out
    assert out.index("roll two dice") < out.index("roll_dice") < out.index("Tool results:")
    assert "echo: Thanks, that's all." in out


def test_the_demo_says_the_message_given_on_the_command_line(capsys):
    assert main(["demo", "--model", "test", "/call", "roll_dice", '{"n_dice": 3}']) == 0
    out = capsys.readouterr().out
    assert '"n_dice": 3' in out and "Tool results:" in out


def test_an_unknown_model_fails_with_a_message_not_a_traceback(capsys):
    assert run_demo("no-such-model", "hi") == 1
    assert "The demo failed" in capsys.readouterr().out
