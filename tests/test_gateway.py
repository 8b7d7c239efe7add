"""Code-interpreter kernels on a real Jupyter Kernel Gateway, which these tests start on loopback.

The gateway runs this same Python (numpy and matplotlib included) and keeps its kernels' files in
a folder of its own, so files reach them and come back only through the kernels themselves.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from _serve_process import free_port
from _servers import RunningServer
from _wait import wait_until
from test_code_interpreter import PNG_MAGIC, code_call, execute, fenced, finish, logs_of, pool_of

pytest.importorskip("kernel_gateway")
psutil = pytest.importorskip("psutil")


class KernelGateway:
    """A ``jupyter-kernelgateway`` process on a free loopback port, with a token."""

    def __init__(self, folder: Path):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.token = secrets.token_hex(16)
        #: The kernels' temporary folder: their working directories are made in it.
        self.tmp = folder / "tmp"
        self.tmp.mkdir()
        env = {
            **os.environ,
            # The python3 kernel spec runs ``python``: this one.
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            "TMPDIR": str(self.tmp),
        }
        self.log = (folder / "gateway.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kernel_gateway",
                "--KernelGatewayApp.ip=127.0.0.1",
                f"--KernelGatewayApp.port={port}",
                f"--KernelGatewayApp.auth_token={self.token}",
                "--KernelGatewayApp.default_kernel_name=python3",
            ],
            cwd=folder,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, timeout=60, message="the kernel gateway to listen")

    def _ready(self) -> bool:
        assert self.process.poll() is None, "the kernel gateway ended"
        try:
            return self.get("/api").status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> httpx.Response:
        headers = {"Authorization": f"token {self.token}"}
        return httpx.get(self.url + path, headers=headers, timeout=10)

    def has(self, kernel_id: str | None) -> bool:
        """Whether the gateway has this kernel (its list is not served by default)."""
        return self.get(f"/api/kernels/{kernel_id}").status_code == 200

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def pids(self) -> set[int]:
        """The gateway's process and its kernels'."""
        root = psutil.Process(self.process.pid)
        return {root.pid, *(p.pid for p in root.children(recursive=True))}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelGateway]:
    running = KernelGateway(tmp_path_factory.mktemp("gateway"))
    yield running
    running.stop()


@pytest.fixture
def on_gateway(
    make_server: Callable[..., RunningServer], gateway: KernelGateway
) -> Callable[..., RunningServer]:
    """Start a server whose kernels run on the gateway."""

    def make(**overrides: Any) -> RunningServer:
        options = {
            "kernel_gateway_url": gateway.url,
            "kernel_gateway_token": gateway.token,
            "code_warm_kernels": 0,
            **overrides,
        }
        return make_server(**options)

    return make


def coder_of(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])


def local_kernels(gateway: KernelGateway) -> set[int]:
    """Kernel processes of this test process that are not the gateway's (other tests' servers
    may have some)."""
    theirs = gateway.pids()
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if child.pid not in theirs and "ipykernel" in cmdline:
            found.add(child.pid)
    return found


def test_prints_plots_and_saved_files_come_back_and_no_local_kernel_starts(on_gateway, gateway):
    before = local_kernels(gateway)
    running = on_gateway(code_warm_kernels=1)
    pool = pool_of(running)
    wait_until(lambda: pool.warm_count() == 1, timeout=60, message="a warm kernel on the gateway")
    client = running.client()
    coder = coder_of(client)
    thread = client.beta.threads.create()
    _, call = execute(client, coder.id, thread.id, "import os\nprint(os.getcwd())\nanswer = 41")
    workdir = logs_of(call).strip()
    # The kernel works on the gateway's side, not in the server's data directory.
    assert Path(workdir).is_relative_to(gateway.tmp) and thread.id in workdir
    _, call = execute(client, coder.id, thread.id, "print(answer + 1)")
    assert logs_of(call) == "42\n"

    plot = (
        "import numpy as np\nimport matplotlib.pyplot as plt\n"
        "x = np.linspace(0, 2 * np.pi, 100)\nplt.plot(x, np.sin(x))\nplt.show()"
    )
    _, call = execute(client, coder.id, thread.id, plot)
    [image] = [o.image.file_id for o in call.outputs if o.type == "image"]
    assert client.files.content(image).read().startswith(PNG_MAGIC)

    save = (
        "import os\nos.makedirs('output/sub', exist_ok=True)\n"
        "open('output/report.csv', 'w').write('a,b\\n1,2\\n')\n"
        "open('output/sub/b.bin', 'wb').write(bytes(range(256)) * 10000)\n"
        "open('scratch.txt', 'w').write('no')"
    )
    run, _ = execute(client, coder.id, thread.id, save)
    reply = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0].content[0].text
    cited = {a.text: a.file_path.file_id for a in reply.annotations if a.type == "file_path"}
    assert set(cited) == {"output/report.csv", "output/sub/b.bin"}
    assert client.files.content(cited["output/report.csv"]).read() == b"a,b\n1,2\n"
    # Several pieces (it is larger than one), whole.
    assert client.files.content(cited["output/sub/b.bin"]).read() == bytes(range(256)) * 10000
    # Unchanged files are not given again; a changed one is.
    run, _ = execute(client, coder.id, thread.id, "open('output/report.csv', 'a').write('3,4\\n')")
    reply = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0].content[0].text
    assert [a.text for a in reply.annotations] == ["output/report.csv"]

    # Every kernel is the gateway's: the pool started no process, and none runs here.
    assert pool.pids() == [] and not local_kernels(gateway) - before
    kernel = pool._threads[thread.id]
    assert gateway.has(getattr(kernel, "kernel_id", None))
    # Stopping the server shuts its kernels down on the gateway.
    ids = {getattr(k, "kernel_id", None) for k in pool._kernels}
    assert len(ids) == 2  # the thread's and a warm one
    running.stop()
    assert not any(gateway.has(i) for i in ids)


def test_an_attached_file_is_readable_in_the_kernel(on_gateway, caplog):
    # The local sandbox does not apply to kernels on a gateway, and the server says so.
    running = on_gateway(code_sandbox="bwrap")
    client = running.client()
    wait_until(
        lambda: "sandbox (bwrap) does not apply" in caplog.text, message="the sandbox warning"
    )
    table = io.StringIO()
    csv.writer(table).writerows([["x", "y"], [1, 2], [3, 4]])
    data = client.files.create(file=("data.csv", table.getvalue().encode()), purpose="assistants")
    code = "import csv\nprint(sum(int(r['y']) for r in csv.DictReader(open('data.csv'))))"
    attachment = {"file_id": data.id, "tools": [{"type": "code_interpreter"}]}
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": fenced(code), "attachments": [attachment]}]
    )
    coder = coder_of(client)
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=coder.id)
    assert finish(client, thread.id, run.id).status == "completed"
    assert logs_of(code_call(client, thread.id, run.id)) == "6\n"
    # A file attached later reaches the kernel the thread already has.
    notes = client.files.create(file=("notes.txt", b"later"), purpose="assistants")
    run = client.beta.threads.runs.create(
        thread_id=thread.id,
        assistant_id=coder.id,
        additional_messages=[
            {
                "role": "user",
                "content": fenced("print(open('notes.txt').read())"),
                "attachments": [{"file_id": notes.id, "tools": [{"type": "code_interpreter"}]}],
            }
        ],
    )
    assert finish(client, thread.id, run.id).status == "completed"
    assert logs_of(code_call(client, thread.id, run.id)) == "later\n"


def test_a_timeout_interrupts_the_kernel_and_keeps_its_state(on_gateway):
    running = on_gateway(code_timeout_seconds=1)
    client = running.client()
    coder = coder_of(client)
    thread = client.beta.threads.create()
    begin = time.monotonic()
    _, call = execute(client, coder.id, thread.id, "import time\nx = 5\ntime.sleep(60)")
    assert time.monotonic() - begin < 20
    assert "timed out after 1 s" in logs_of(call) and "KeyboardInterrupt" in logs_of(call)
    _, call = execute(client, coder.id, thread.id, "print(x)")
    assert logs_of(call) == "5\n"


def test_a_crashed_kernel_is_reported_and_replaced(on_gateway, gateway):
    running = on_gateway()
    client = running.client()
    coder = coder_of(client)
    thread = client.beta.threads.create()
    execute(client, coder.id, thread.id, "y = 1\nopen('output/kept.txt', 'w').write('kept')")
    first = getattr(pool_of(running)._threads[thread.id], "kernel_id", None)
    _, call = execute(client, coder.id, thread.id, "import os\nos._exit(1)")
    assert "kernel died" in logs_of(call), logs_of(call)
    _, call = execute(
        client, coder.id, thread.id, "print('y' in dir(), open('output/kept.txt').read())"
    )
    logs = logs_of(call)
    assert "new kernel" in logs and logs.endswith("False kept\n"), logs
    # The dead one was shut down on the gateway, not left to its restart.
    assert not gateway.has(first)


def test_idle_and_least_recently_used_kernels_are_shut_down_on_the_gateway(on_gateway, gateway):
    running = on_gateway(code_max_kernels=1, code_kernel_ttl_seconds=3)
    client = running.client()
    coder = coder_of(client)
    first, second = client.beta.threads.create(), client.beta.threads.create()
    execute(client, coder.id, first.id, "a = 1")
    pool = pool_of(running)
    evicted = getattr(pool._threads[first.id], "kernel_id", None)
    execute(client, coder.id, second.id, "b = 2")
    assert first.id not in pool._threads and not gateway.has(evicted)
    idle = getattr(pool._threads[second.id], "kernel_id", None)
    wait_until(lambda: second.id not in pool._threads, message="the idle kernel to stop")
    wait_until(lambda: not gateway.has(idle), message="the gateway to shut it down")
    _, call = execute(client, coder.id, first.id, "print('a' in dir())")
    assert "to make room" in logs_of(call) and logs_of(call).endswith("False\n")


def test_a_wrong_token_fails_the_run_clearly(on_gateway):
    running = on_gateway(kernel_gateway_token="not-the-token")
    client = running.client()
    thread = client.beta.threads.create(messages=[{"role": "user", "content": fenced("1")}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=coder_of(client).id)
    run = finish(client, thread.id, run.id)
    assert run.status == "failed"
    assert "refused the server's token" in run.last_error.message
    assert "IPYASSISTANT_KERNEL_GATEWAY_TOKEN" in run.last_error.message


def test_the_gateway_settings_are_read_from_the_environment(monkeypatch):
    from ipyassistant.server import ServerConfig

    monkeypatch.setenv("IPYASSISTANT_KERNEL_GATEWAY_URL", "http://gateway:8888")
    monkeypatch.setenv("IPYASSISTANT_KERNEL_GATEWAY_TOKEN", "secret")
    monkeypatch.setenv("IPYASSISTANT_KERNEL_GATEWAY_KERNEL", "python-gpu")
    config = ServerConfig.from_env()
    assert config.kernel_gateway_url == "http://gateway:8888"
    assert config.kernel_gateway_token == "secret"
    assert config.kernel_gateway_kernel == "python-gpu"
    monkeypatch.delenv("IPYASSISTANT_KERNEL_GATEWAY_URL")
    assert ServerConfig.from_env().kernel_gateway_url is None


def test_serve_probes_no_local_sandbox_when_kernels_run_on_a_gateway(monkeypatch) -> None:
    from ipyassistant.server import cli, sandbox

    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "bwrap is not installed")
    assert cli._code_sandbox("bwrap") is None  # asked for, cannot run: serve refuses
    monkeypatch.setenv("IPYASSISTANT_KERNEL_GATEWAY_URL", "http://gateway:8888")
    assert cli._code_sandbox("bwrap") == "none"
