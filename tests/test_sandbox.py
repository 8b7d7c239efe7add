"""Sandboxed code-interpreter kernels (bubblewrap), and kernels dying with a killed server.

Code runs through the code interpreter of a real server, as the model's would: in its sandbox
it cannot read the database, see another thread's files, reach the server, write outside its
directory or read the server's secrets, while numpy and matplotlib work as before.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from _serve_process import KEY, free_port
from _servers import RunningServer, server_config
from _wait import wait_until
from ipyassistant.server.config import ServerConfig
from ipyassistant.server.sandbox import Bubblewrap, SandboxUnavailable
from test_code_interpreter import PNG_MAGIC, execute, fenced, logs_of
from test_server_crash import serve

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap is not installed (apt-get install bubblewrap); .ci/run installs it",
)
SECRET = "sk-server-secret-do-not-leak"


def probe(client: Any, coder: Any, thread_id: str, code: str) -> dict[str, Any]:
    """Run ``code`` (which prints one JSON object last) in the thread's kernel; that object."""
    _, call = execute(client, coder.id, thread_id, code)
    return json.loads(logs_of(call).strip().splitlines()[-1])  # type: ignore[no-any-return]


# Tries each action; what it gives back, or the error it raises. The server is asked over HTTP,
# not merely connected to: the sandbox's own loopback has a listener of the kernel's (ipykernel's
# IOPub pipe, on an ephemeral port), whose number the server's port can happen to equal.
TRY = """
import http.client, json, os
def attempt(action):
    try:
        return ["ok", action()]
    except Exception as exc:
        return ["failed", f"{type(exc).__name__}: {exc}"]
def write(path):
    with open(path, "w") as f:
        f.write("escaped")
def ask_server(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        connection.request("GET", "/v1/assistants")
        return connection.getresponse().status
    finally:
        connection.close()
"""


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    os.environ["OPENAI_API_KEY"] = SECRET
    os.environ["IPYASSISTANT_SOME_TOKEN"] = SECRET
    os.environ["UNRELATED_SERVER_SETTING"] = "server-only"
    running = RunningServer(
        server_config(
            tmp_path_factory.mktemp("sandboxed"), code_sandbox="bwrap", code_warm_kernels=0
        )
    )
    try:
        yield running
    finally:
        running.stop()
        for name in ("OPENAI_API_KEY", "IPYASSISTANT_SOME_TOKEN", "UNRELATED_SERVER_SETTING"):
            os.environ.pop(name, None)


@pytest.fixture(scope="module")
def coder(sandboxed: RunningServer) -> Any:
    with sandboxed.client() as client:
        return client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])


@needs_bwrap
def test_sandboxed_code_sees_only_its_own_directory(sandboxed, coder):
    config = sandboxed.config
    with sandboxed.client() as client:
        other, mine = client.beta.threads.create(), client.beta.threads.create()
        execute(client, coder.id, other.id, "open('private.txt', 'w').write('other thread')")
        assert (config.code_dir / other.id / "private.txt").exists()
        database = config.data_dir / "ipyassistant.sqlite3"
        assert database.exists()
        port = urlsplit(sandboxed.base_url).port
        home = Path.home()
        code = TRY + (
            "print(json.dumps({\n"
            f"  'database': attempt(lambda: open({str(database)!r}, 'rb').read(16).hex()),\n"
            f"  'data_dir': attempt(lambda: os.listdir({str(config.data_dir)!r})),\n"
            f"  'other': attempt(lambda: os.listdir({str(config.code_dir / other.id)!r})),\n"
            f"  'server': attempt(lambda: ask_server({port})),\n"
            f"  'write_data': attempt(lambda: write({str(config.data_dir / 'escaped')!r})),\n"
            f"  'write_other': attempt(lambda: write({str(config.code_dir / other.id / 'x')!r})),\n"
            "  'write_usr': attempt(lambda: write('/usr/escaped')),\n"
            f"  'write_home': attempt(lambda: write({str(home / 'escaped')!r})),\n"
            "  'write_tmp': attempt(lambda: write('/tmp/scratch')),\n"
            "  'write_own': attempt(lambda: write('mine.txt')),\n"
            "  'cwd': os.getcwd(),\n"
            "}))"
        )
        seen = probe(client, coder, mine.id, code)
    for name in ("database", "other", "server", "write_data", "write_other", "write_usr", "write_home"):
        assert seen[name][0] == "failed", (name, seen[name])
    # The data directory holds nothing but the way to the code's own folder.
    assert seen["data_dir"] == ["ok", ["code_interpreter"]]
    assert seen["write_tmp"][0] == seen["write_own"][0] == "ok"
    assert seen["cwd"] == str(config.code_dir / mine.id)
    assert (config.code_dir / mine.id / "mine.txt").read_text() == "escaped"
    for path in (config.data_dir / "escaped", config.code_dir / other.id / "x", home / "escaped"):
        assert not path.exists()
    assert not Path("/usr/escaped").exists() and not Path("/tmp/scratch").exists()


@needs_bwrap
def test_numpy_and_matplotlib_work_in_the_sandbox(sandboxed, coder):
    pytest.importorskip("matplotlib")
    pytest.importorskip("numpy")
    code = (
        "import numpy as np\nimport matplotlib.pyplot as plt\n"
        "x = np.linspace(0, 2 * np.pi, 100)\nplt.plot(x, np.sin(x))\n"
        "import os\nos.makedirs('output', exist_ok=True)\nplt.savefig('output/sine.png')\n"
        "plt.show()\nprint(round(float(np.sin(x).max()), 3))"
    )
    with sandboxed.client() as client:
        thread = client.beta.threads.create()
        run, call = execute(client, coder.id, thread.id, code)
        assert "1.0" in logs_of(call)
        [image] = [o for o in call.outputs if o.type == "image"]
        assert client.files.content(image.image.file_id).read().startswith(PNG_MAGIC)
        [message] = client.beta.threads.messages.list(thread.id, run_id=run.id).data
        saved = [
            a.file_path.file_id
            for block in message.content
            if block.type == "text"
            for a in block.text.annotations
            if a.type == "file_path"
        ]
        assert saved and client.files.content(saved[0]).read().startswith(PNG_MAGIC)


@needs_bwrap
def test_the_sandbox_has_none_of_the_servers_environment(sandboxed, coder):
    with sandboxed.client() as client:
        thread = client.beta.threads.create()
        code = (
            "import json, os\n"
            "print(json.dumps({'env': dict(os.environ), 'pids': sorted(p for p in os.listdir('/proc')"
            " if p.isdigit())}))"
        )
        seen = probe(client, coder, thread.id, code)
    env = seen["env"]
    assert SECRET not in json.dumps(env)
    assert "UNRELATED_SERVER_SETTING" not in env
    assert not [name for name in env if name.startswith(("IPYASSISTANT_", "OPENAI_", "JPY_"))]
    assert env["HOME"] == str(sandboxed.config.code_dir / thread.id)
    # Its own PID namespace: the server's processes (and their /proc/PID/environ) are not there.
    assert str(os.getpid()) not in seen["pids"] and len(seen["pids"]) < 10


@needs_bwrap
def test_the_network_is_reachable_only_when_asked_for(make_server):
    running = make_server(code_sandbox="bwrap", code_network=True, code_warm_kernels=0)
    port = urlsplit(running.base_url).port
    with running.client() as client:
        coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
        thread = client.beta.threads.create()
        seen = probe(client, coder, thread.id, TRY + f"print(json.dumps(attempt(lambda: ask_server({port}))))")
    assert seen == ["ok", 401]  # the server itself answered (no key was sent)


@needs_bwrap
def test_a_timeout_interrupts_the_sandboxed_kernel_and_keeps_its_state(make_server):
    # Interrupted by a message, not by SIGINT to its process group, which would kill bwrap.
    running = make_server(code_sandbox="bwrap", code_timeout_seconds=1, code_warm_kernels=0)
    with running.client() as client:
        coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
        thread = client.beta.threads.create()
        _, call = execute(client, coder.id, thread.id, "x = 42\nimport time\ntime.sleep(30)")
        assert "KeyboardInterrupt" in logs_of(call) and "timed out" in logs_of(call)
        _, call = execute(client, coder.id, thread.id, "print(x)")
        assert logs_of(call).strip() == "42"


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_kernels_die_with_a_server_killed_with_sigkill(tmp_path, monkeypatch, sandbox):
    psutil = pytest.importorskip("psutil")
    monkeypatch.setenv("IPYASSISTANT_CODE_SANDBOX", sandbox)
    server = serve(tmp_path, free_port())
    started = tmp_path / "code_interpreter"
    # Busy in C with the GIL held (a regular expression backtracking for ages), so ipykernel's
    # own watch of its parent, a Python thread, cannot notice the server's death.
    code = "open('started', 'w').write('yes')\nimport re\nre.match(r'(a+)+$', 'a' * 64 + 'b')"
    if sandbox == "bwrap":  # what the code starts dies with it too (its PID namespace ends)
        code = "import subprocess\nchild = subprocess.Popen(['sleep', '300'])\n" + code
    try:
        with server.client() as client:
            coder = client.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
            thread = client.beta.threads.create()
            client.beta.threads.runs.create(
                thread_id=thread.id,
                assistant_id=coder.id,
                additional_messages=[{"role": "user", "content": fenced(code)}],
            )
            started = started / thread.id / "started"
            wait_until(started.exists, timeout=60, message="the code to start")
        kernels = psutil.Process(server.proc.pid).children(recursive=True)
        assert kernels, "the server has no kernel process"
        if sandbox == "bwrap":
            assert any(p.name() == "sleep" for p in kernels)
        time.sleep(0.5)  # well into the regular expression
        server.kill()
    finally:
        server.terminate()

    def gone(process: Any) -> bool:
        try:
            return process.status() == psutil.STATUS_ZOMBIE  # type: ignore[no-any-return]
        except psutil.NoSuchProcess:
            return True

    try:
        wait_until(lambda: all(gone(p) for p in kernels), timeout=5, message="the kernels to die")
    finally:
        for process in kernels:  # never leave one behind, even when the test fails
            if not gone(process):
                process.kill()


# -- configuration ----------------------------------------------------------------------------


def test_the_sandbox_is_off_unless_asked_for_and_checks_its_value(monkeypatch):
    monkeypatch.delenv("IPYASSISTANT_CODE_SANDBOX", raising=False)
    monkeypatch.delenv("IPYASSISTANT_CODE_NETWORK", raising=False)
    config = ServerConfig.from_env()
    assert (config.code_sandbox, config.code_network) == ("none", False)
    monkeypatch.setenv("IPYASSISTANT_CODE_SANDBOX", "BWRAP")
    monkeypatch.setenv("IPYASSISTANT_CODE_NETWORK", "1")
    config = ServerConfig.from_env()
    assert (config.code_sandbox, config.code_network) == ("bwrap", True)
    monkeypatch.setenv("IPYASSISTANT_CODE_SANDBOX", "docker")
    with pytest.raises(ValueError, match="bwrap or none"):
        ServerConfig.from_env()


def test_a_sqlite_database_outside_the_data_directory_is_hidden_too(tmp_path):
    config = ServerConfig(
        data_dir=tmp_path / "data", database_url=f"sqlite+aiosqlite:///{tmp_path}/db/x.sqlite3"
    )
    assert config.private_dirs == [tmp_path / "data", tmp_path / "db"]
    assert ServerConfig(data_dir=tmp_path).private_dirs == [tmp_path]


def test_a_sandbox_that_cannot_run_says_how_to_install_it_or_turn_it_off(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap there
    with pytest.raises(SandboxUnavailable) as raised:
        Bubblewrap.prepare(sys.executable, [tmp_path], network=False, tmp_bytes=0)
    message = str(raised.value)
    assert "not installed" in message and "apt-get install bubblewrap" in message
    assert "IPYASSISTANT_CODE_SANDBOX=none" in message
    # `serve` refuses to start, before binding its port.
    env = {**os.environ, "IPYASSISTANT_CODE_SANDBOX": "bwrap", "IPYASSISTANT_API_KEY": KEY}
    done = subprocess.run(
        [sys.executable, "-m", "ipyassistant.cli", "serve", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "apt-get install bubblewrap" in done.stderr and "--code-sandbox none" in done.stderr
