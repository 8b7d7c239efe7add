"""pprint_run, pprint_messages and pprint_steps print the panels after the fact."""

from __future__ import annotations

from pathlib import Path

from openai.types.beta.threads import Message
from openai.types.beta.threads.runs import RunStep

from ipyassistant import Assistant, Thread, pprint_messages, pprint_run, pprint_steps
from ipyassistant.formatting import download_images, image_file_ids

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def roll_dice(n_dice: int = 2) -> list[int]:
    """Roll dice (sixes)."""
    return [6] * n_dice


def test_pprint_run_prints_tool_calls_and_messages_in_order(console):
    run = Assistant(tools=[roll_dice]).say("go", event_handler_class=None)
    pprint_run(run, console=console)
    out = console.file.getvalue()
    assert out.index("Tool calls") < out.index("Tool results:")
    assert "roll_dice" in out and "→ [6,6]" in out and "User" not in out


def test_pprint_run_shows_how_a_run_ended(console):
    run = Assistant().say("/fail no more tea", event_handler_class=None)
    pprint_run(run, console=console)
    assert "Run failed" in console.file.getvalue() and "no more tea" in console.file.getvalue()


def test_pprint_messages_and_pprint_steps(console):
    thread = Thread()
    thread.add("Hello!")
    run = thread.run(Assistant(tools=[roll_dice]))
    pprint_messages(thread.get_messages(), console=console)
    messages = console.file.getvalue()
    assert messages.index("User") < messages.index("Hello!") < messages.index("Assistant")
    assert "Tool calls" not in messages

    console.file.truncate(0)
    console.file.seek(0)
    pprint_steps(run.steps, console=console)
    steps = console.file.getvalue()
    assert "Tool calls" in steps and "roll_dice" in steps and "Assistant" not in steps


def test_images_are_downloaded_to_a_temporary_file_and_shown_as_paths(api, console):
    image = api.files.create(file=("plot.png", PNG), purpose="assistants")
    step = RunStep.model_validate(
        {
            "id": "step_1",
            "assistant_id": "asst_1",
            "created_at": 1,
            "object": "thread.run.step",
            "run_id": "run_1",
            "status": "completed",
            "thread_id": "thread_1",
            "type": "tool_calls",
            "step_details": {
                "type": "tool_calls",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "code_interpreter",
                        "code_interpreter": {
                            "input": "plot(sin)",
                            "outputs": [
                                {"type": "logs", "logs": "plotted"},
                                {"type": "image", "image": {"file_id": image.id}},
                            ],
                        },
                    }
                ],
            },
        }
    )
    message = Message.model_validate(
        {
            "id": "msg_1",
            "created_at": 1,
            "object": "thread.message",
            "role": "assistant",
            "status": "completed",
            "thread_id": "thread_1",
            "content": [
                {"type": "text", "text": {"value": "Here it is", "annotations": []}},
                {"type": "image_file", "image_file": {"file_id": image.id}},
            ],
        }
    )
    assert image_file_ids([message], [step]) == [image.id]
    paths = download_images([image.id, "file-missing"])
    assert list(paths) == [image.id]  # a missing image is left out, not an error
    path = paths[image.id]
    assert isinstance(path, Path) and path.read_bytes() == PNG and path.suffix == ".png"

    pprint_steps([step], console=console)
    pprint_messages([message], console=console)
    out = console.file.getvalue()
    assert "plot(sin)" in out and "plotted" in out and "Here it is" in out
    assert out.count(path.name) == 2
