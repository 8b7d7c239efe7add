"""The code interpreter through the real openai SDK: kernels, files, images, limits, clean-up."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AssistantEventHandler
from typing_extensions import override

from _wait import wait_until
from ipyassistant.server.code_interpreter import _Logs, _safe_name
from ipyassistant.server.kernels import KernelPool

TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete", "requires_action"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- helpers ----------------------------------------------------------------------------------


def fenced(code: str, text: str = "") -> str:
    return f"{text}\n```python\n{code}\n```" if text else f"```python\n{code}\n```"


def finish(client: openai.OpenAI, thread_id: str, run_id: str, timeout: float = 60) -> Any:
    return wait_until(
        lambda: (
            (r := client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)).status in TERMINAL
            and r
        ),
        timeout=timeout,
        message=f"run {run_id} to end",
    )


def execute(
    client: openai.OpenAI, assistant_id: str, thread_id: str, code: str, **options: Any
) -> tuple[Any, Any]:
    """Run ``code`` through the test model; returns (run, code_interpreter call)."""
    run = client.beta.threads.runs.create(
        thread_id=thread_id,
        assistant_id=assistant_id,
        additional_messages=[{"role": "user", "content": fenced(code)}],
        **options,
    )
    run = finish(client, thread_id, run.id)
    assert run.status == "completed", run.last_error
    return run, code_call(client, thread_id, run.id)


def code_call(client: openai.OpenAI, thread_id: str, run_id: str) -> Any:
    steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc")
    calls = [
        c
        for s in steps.data
        if s.step_details.type == "tool_calls"
        for c in s.step_details.tool_calls
        if c.type == "code_interpreter"
    ]
    assert len(calls) == 1
    return calls[0].code_interpreter


def logs_of(call: Any) -> str:
    return "".join(o.logs for o in call.outputs if o.type == "logs")


def pool_of(running: Any) -> KernelPool:
    return running.recorder.app.state.server.code_interpreter.pool  # type: ignore[no-any-return]


@pytest.fixture
def coder(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.inputs: list[str] = []
        self.outputs: list[Any] = []
        self.annotations: list[Any] = []

    @override
    def on_event(self, event: Any) -> None:
        self.events.append(event.event)

    @override
    def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
        if delta.type == "code_interpreter" and delta.code_interpreter:
            if delta.code_interpreter.input:
                self.inputs.append(delta.code_interpreter.input)
            self.outputs += delta.code_interpreter.outputs or []

    @override
    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.annotations += delta.annotations or []


# -- behaviour --------------------------------------------------------------------------------


def test_a_plot_becomes_a_png_file_the_user_can_download(client, coder):
    pytest.importorskip("matplotlib")
    pytest.importorskip("numpy")
    code = (
        "import numpy as np\nimport matplotlib.pyplot as plt\n"
        "x = np.linspace(0, 2 * np.pi, 100)\nplt.plot(x, np.sin(x))\nplt.show()"
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": fenced(code, "Generate a plot of sin(x)")}]
    )
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=coder.id, event_handler=handler
    ) as stream:
        stream.until_done()
    assert stream.get_final_run().status == "completed"
    # The input streams as the model writes it (the test model: line by line).
    assert len(handler.inputs) > 1 and "".join(handler.inputs).strip() == code
    images = [o for o in handler.outputs if o.type == "image"]
    assert len(images) == 1
    file_id = images[0].image.file_id
    data = client.files.content(file_id).read()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    info = client.files.retrieve(file_id)
    assert info.purpose == "assistants_output" and info.filename.endswith(".png")
    # The image is also a block of the assistant's next message.
    message = stream.get_final_messages()[-1]
    assert [b.image_file.file_id for b in message.content if b.type == "image_file"] == [file_id]


def test_variables_persist_between_runs_of_a_thread(client, coder):
    thread = client.beta.threads.create()
    execute(client, coder.id, thread.id, "answer = 41")
    _, call = execute(client, coder.id, thread.id, "print(answer + 1)")
    assert logs_of(call).strip() == "42"


def test_results_errors_and_ansi_codes(client, coder):
    thread = client.beta.threads.create()
    _, call = execute(
        client,
        coder.id,
        thread.id,
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7",
    )
    assert logs_of(call) == "out\nerr\n42\n"
    _, call = execute(client, coder.id, thread.id, "1 / 0")
    logs = logs_of(call)
    assert "ZeroDivisionError" in logs and "\x1b" not in logs


def test_the_model_gets_the_logs_as_the_tool_result(client, coder):
    thread = client.beta.threads.create()
    run, _ = execute(client, coder.id, thread.id, "print('from the kernel')")
    messages = client.beta.threads.messages.list(thread.id, run_id=run.id)
    assert "- python: from the kernel" in messages.data[0].content[0].text.value


def test_attached_csv_and_tool_resources_files_are_in_the_working_directory(client):
    table = io.StringIO()
    csv.writer(table).writerows([["x", "y"], [1, 2], [3, 4]])
    data = client.files.create(file=("data.csv", table.getvalue().encode()), purpose="assistants")
    notes = client.files.create(file=("notes.txt", b"from the assistant"), purpose="assistants")
    assistant = client.beta.assistants.create(
        model="test",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [notes.id]}},
    )
    code = (
        "import csv\nrows = list(csv.DictReader(open('data.csv')))\n"
        "print(sum(int(r['y']) for r in rows), open('notes.txt').read())"
    )
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": fenced(code),
                "attachments": [{"file_id": data.id, "tools": [{"type": "code_interpreter"}]}],
            }
        ]
    )
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    run = finish(client, thread.id, run.id)
    assert run.status == "completed", run.last_error
    assert logs_of(code_call(client, thread.id, run.id)).strip() == "6 from the assistant"
    # The model is told where the files are.
    run = client.beta.threads.runs.create(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_messages=[{"role": "user", "content": "/instructions"}],
    )
    assert finish(client, thread.id, run.id).status == "completed"
    reply = client.beta.threads.messages.list(thread.id, limit=1).data[0].content[0].text.value
    assert "notes.txt, data.csv" in reply and "output/" in reply


def test_files_saved_in_output_are_cited_with_file_path_annotations(client, coder):
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": fenced(
                    "import os\nos.makedirs('output/sub', exist_ok=True)\n"
                    "open('output/report.csv', 'w').write('a,b\\n1,2\\n')\n"
                    "open('output/sub/b.txt', 'w').write('bee')\nopen('scratch.txt', 'w').write('no')"
                ),
            }
        ]
    )
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=coder.id, event_handler=handler
    ) as stream:
        stream.until_done()
    message = stream.get_final_messages()[-1]
    text = message.content[0].text
    cited = {a.text: a.file_path.file_id for a in text.annotations if a.type == "file_path"}
    assert set(cited) == {"output/report.csv", "output/sub/b.txt"}
    for annotation in text.annotations:
        assert text.value[annotation.start_index : annotation.end_index] == annotation.text
    assert client.files.content(cited["output/report.csv"]).read() == b"a,b\n1,2\n"
    assert client.files.retrieve(cited["output/sub/b.txt"]).purpose == "assistants_output"
    assert len(handler.annotations) == 2  # streamed as well
    # An unchanged file is not given again; a changed one is.
    run, call = execute(
        client, coder.id, thread.id, "open('output/sub/b.txt', 'w').write('bumble')"
    )
    reply = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0].content[0].text
    assert [a.text for a in reply.annotations] == ["output/sub/b.txt"]
    assert "output/report.csv" not in logs_of(call)


def test_jpeg_images_are_kept_as_jpeg(client, coder):
    pytest.importorskip("PIL")
    code = (
        "import io\nfrom PIL import Image as PILImage\nfrom IPython.display import Image, display\n"
        "buf = io.BytesIO()\nPILImage.new('RGB', (8, 8), 'red').save(buf, format='JPEG')\n"
        "display(Image(data=buf.getvalue(), format='jpeg'))"
    )
    thread = client.beta.threads.create()
    _, call = execute(client, coder.id, thread.id, code)
    [image] = [o.image.file_id for o in call.outputs if o.type == "image"]
    assert client.files.content(image).read()[:2] == b"\xff\xd8"
    assert client.files.retrieve(image).filename.endswith(".jpg")


def test_tool_choice_can_require_the_code_interpreter(client, coder):
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create(
        thread_id=thread.id,
        assistant_id=coder.id,
        tool_choice={"type": "code_interpreter"},
        additional_messages=[{"role": "user", "content": "anything"}],
    )
    run = finish(client, thread.id, run.id)
    assert run.status == "completed"
    assert logs_of(code_call(client, thread.id, run.id)) == "hello from the test model\n"


def test_cancelling_a_run_interrupts_its_code(client, coder, server):
    thread = client.beta.threads.create()
    started = server.config.code_dir / thread.id / "started"
    run = client.beta.threads.runs.create(
        thread_id=thread.id,
        assistant_id=coder.id,
        additional_messages=[
            {
                "role": "user",
                "content": fenced(
                    "import time\nkept = 7\nopen('started', 'w').close()\ntime.sleep(120)"
                ),
            }
        ],
    )
    wait_until(started.exists, message="the code to start")
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert finish(client, thread.id, run.id, timeout=20).status == "cancelled"
    # The kernel was interrupted, not left sleeping, and kept its variables.
    begin = time.monotonic()
    _, call = execute(client, coder.id, thread.id, "print(kept)")
    assert logs_of(call).strip() == "7"
    assert time.monotonic() - begin < 20


def test_output_beyond_the_limit_is_cut_with_a_note(make_server):
    running = make_server(code_output_chars=1000, code_warm_kernels=0)
    client = running.client()
    coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    _, call = execute(
        client,
        coder.id,
        thread.id,
        "print('first')\nfor i in range(20000): print(i)\nprint('last')",
    )
    logs = logs_of(call)
    assert len(logs) < 1100
    assert logs.startswith("first\n") and logs.endswith("last\n")
    assert "characters of output omitted" in logs


def test_a_timeout_interrupts_the_kernel_and_keeps_its_state(make_server):
    running = make_server(code_timeout_seconds=1, code_warm_kernels=0)
    client = running.client()
    coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    begin = time.monotonic()
    _, call = execute(client, coder.id, thread.id, "import time\nx = 5\ntime.sleep(60)")
    assert time.monotonic() - begin < 20
    assert "timed out after 1 s" in logs_of(call)
    assert "KeyboardInterrupt" in logs_of(call)
    _, call = execute(client, coder.id, thread.id, "print(x)")
    assert logs_of(call).strip() == "5"


def test_a_kernel_that_ignores_the_interrupt_is_replaced(make_server):
    running = make_server(
        code_timeout_seconds=1, code_interrupt_grace_seconds=1, code_warm_kernels=0
    )
    client = running.client()
    coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    code = (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nx = 1\ntime.sleep(60)"
    )
    _, call = execute(client, coder.id, thread.id, code)
    assert "timed out after 1 s" in logs_of(call)
    assert "did not stop when interrupted" in logs_of(call)
    _, call = execute(client, coder.id, thread.id, "print('x' in dir())")
    logs = logs_of(call)
    assert "new kernel" in logs and logs.endswith("False\n")


def test_memory_is_capped(make_server):
    running = make_server(code_memory_mb=400, code_warm_kernels=0)
    client = running.client()
    coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    _, call = execute(client, coder.id, thread.id, "big = bytearray(2 * 1024 ** 3)")
    assert "MemoryError" in logs_of(call)
    _, call = execute(client, coder.id, thread.id, "print('still here')")
    assert logs_of(call) == "still here\n"


@pytest.mark.parametrize(
    ("crash", "reason"),
    [("import os\nos._exit(3)", "exit code 3"), ("import ctypes\nctypes.string_at(0)", "SIGSEGV")],
)
def test_a_dead_kernel_is_reported_and_replaced(make_server, crash, reason):
    running = make_server()
    client = running.client()
    coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    execute(client, coder.id, thread.id, "y = 1")
    _, call = execute(client, coder.id, thread.id, crash)
    logs = logs_of(call)
    assert "kernel died" in logs and reason in logs, logs
    _, call = execute(client, coder.id, thread.id, "print('y' in dir())")
    logs = logs_of(call)
    assert "new kernel" in logs and logs.endswith("False\n"), logs


def test_the_least_recently_used_kernel_makes_room(make_server):
    running = make_server(code_max_kernels=1, code_warm_kernels=0)
    client = running.client()
    coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    first, second = client.beta.threads.create(), client.beta.threads.create()
    execute(client, coder.id, first.id, "a = 1")
    execute(client, coder.id, second.id, "b = 2")
    assert pool_of(running).thread_pid(first.id) is None
    _, call = execute(client, coder.id, first.id, "print('a' in dir())")
    assert "to make room" in logs_of(call) and logs_of(call).endswith("False\n")


def test_idle_kernels_are_shut_down(make_server):
    running = make_server(code_kernel_ttl_seconds=0.5, code_warm_kernels=0)
    client = running.client()
    coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    execute(client, coder.id, thread.id, "a = 1")
    pool = pool_of(running)
    wait_until(lambda: pool.thread_pid(thread.id) is None, message="the idle kernel to stop")
    wait_until(lambda: not pool.pids(), message="the idle kernel's process to go")
    _, call = execute(client, coder.id, thread.id, "print('a' in dir())")
    assert "without use" in logs_of(call)


def test_a_warm_kernel_serves_a_new_threads_first_execution(make_server):
    running = make_server()
    pool = pool_of(running)
    wait_until(lambda: pool.warm_count() == 1, timeout=60, message="the warm pool")
    [warm] = pool.pids()
    client = running.client()
    coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    _, call = execute(client, coder.id, thread.id, "import os\nprint(os.getpid(), os.getcwd())")
    pid, cwd = logs_of(call).split()
    assert int(pid) == warm
    assert Path(cwd) == running.config.code_dir / thread.id
    wait_until(lambda: pool.warm_count() == 1, timeout=60, message="the pool to refill")


def test_no_kernel_process_outlives_the_server(make_server):
    psutil = pytest.importorskip("psutil")
    running = make_server()
    client = running.client()
    coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    idle, busy = client.beta.threads.create(), client.beta.threads.create()
    spawn = "import os, subprocess\nchild = subprocess.Popen(['sleep', '300'])\n"
    _, call = execute(client, coder.id, idle.id, spawn + "print(os.getpid(), child.pid)")
    pids = {int(p) for p in logs_of(call).split()}
    # A kernel still running code when the server stops, with a child of its own.
    started = running.config.code_dir / busy.id / "started"
    code = (
        spawn
        + "open('started', 'w').write(f'{os.getpid()} {child.pid}')\nimport time\ntime.sleep(300)"
    )
    run = client.beta.threads.runs.create(
        thread_id=busy.id,
        assistant_id=coder.id,
        additional_messages=[{"role": "user", "content": fenced(code)}],
    )
    wait_until(
        lambda: started.exists() and started.read_text(), timeout=60, message="the busy code to start"
    )
    pids |= {int(p) for p in started.read_text().split()}
    pool = pool_of(running)
    wait_until(lambda: len(pool.pids()) == 3, timeout=60, message="the warm pool to refill")
    pids |= set(pool.pids())
    assert len(pids) == 5
    begin = time.monotonic()
    running.stop()
    assert time.monotonic() - begin < 15

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(
        lambda: all(gone(p) for p in pids), timeout=10, message="every kernel process to end"
    )
    # The interrupted run did not stay active.
    restarted = make_server(data_dir=running.config.data_dir, code_warm_kernels=0)
    with restarted.client() as again:
        assert again.beta.threads.runs.retrieve(run.id, thread_id=busy.id).status == "failed"


def test_a_kernel_python_that_cannot_start_fails_the_run_clearly(make_server, tmp_path):
    running = make_server(code_python=str(tmp_path / "no-python"), code_warm_kernels=0)
    client = running.client()
    coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": fenced("1")}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=coder.id)
    run = finish(client, thread.id, run.id)
    assert run.status == "failed"
    assert "Could not start a Jupyter kernel" in run.last_error.message


# -- units ------------------------------------------------------------------------------------


def test_logs_keep_head_and_tail_within_the_limit():
    logs = _Logs(100)
    for i in range(1000):
        logs.write(f"line {i}\n")
    text = logs.text()
    assert text.startswith("line 0\n") and text.endswith("line 999\n")
    assert "characters of output omitted" in text
    assert len(text) < 160
    small = _Logs(100)
    small.write("\x1b[0;31mred\x1b[0m")
    assert small.text() == "red"


def test_client_filenames_stay_inside_the_working_directory():
    assert _safe_name("../../etc/passwd") == "passwd"
    assert _safe_name("C:\\Users\\me\\data.csv") == "data.csv"
    assert _safe_name("we ird;name.txt") == "we ird_name.txt"
    assert _safe_name("..") == ""


async def test_when_every_kernel_is_busy_a_new_thread_waits_for_one(tmp_path):
    pool = KernelPool(max_kernels=1, warm=0)
    await pool.start()
    try:
        outputs: dict[str, str] = {"a": "", "b": ""}
        running = asyncio.Event()

        def hook(name: str) -> Callable[[str, dict[str, Any]], None]:
            def on_output(kind: str, content: dict[str, Any]) -> None:
                if kind == "stream":
                    outputs[name] += content["text"]
                elif kind == "execute_input" and name == "a":
                    running.set()

            return on_output

        code = "import time\ntime.sleep(1)\nprint('{}', time.time())"
        first = asyncio.create_task(pool.execute("a", tmp_path, code.format("a"), 30, hook("a")))
        await asyncio.wait_for(running.wait(), 60)  # a holds the only kernel and runs
        second = await asyncio.wait_for(
            pool.execute("b", tmp_path, code.format("b"), 30, hook("b")), 60
        )
        assert (await first).outcome == "completed" and second.fresh
        # b started only after a had finished, instead of killing a's kernel mid-execution.
        assert float(outputs["a"].split()[1]) < float(outputs["b"].split()[1]) - 0.9
        assert pool.thread_pid("a") is None and len(pool.pids()) == 1
    finally:
        await pool.stop()
    assert not pool.pids()


def test_deleting_a_thread_removes_its_kernel_and_working_directory(make_server):
    running = make_server()
    with running.client() as client:
        coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
        thread = client.beta.threads.create()
        _, call = execute(client, coder.id, thread.id, "import os; print(os.getcwd())")
        workdir = Path(logs_of(call).strip())
        assert workdir.is_dir() and thread.id in workdir.name
        assert thread.id in pool_of(running)._threads
        client.beta.threads.delete(thread.id)
        assert not workdir.exists()
        assert thread.id not in pool_of(running)._threads
