"""Code-interpreter kernels on a Jupyter Kernel Gateway or Enterprise Gateway.

With ``IPYASSISTANT_KERNEL_GATEWAY_URL`` set, the pool (:mod:`.kernels`) starts no kernel
process of its own: each kernel is one on the gateway, which puts it wherever it is configured
to (on its own host; with Enterprise Gateway, in a Kubernetes pod, a YARN container, a Docker
container). The server speaks to it as ``jupyter_server``'s gateway client does:

- **REST** for its life: ``POST /api/kernels`` starts one, ``GET /api/kernels/{id}`` says whether
  it still exists, ``POST .../interrupt`` interrupts it, ``DELETE /api/kernels/{id}`` shuts it
  down. Every request carries ``Authorization: token …`` when a token is set.
- **The kernel websocket** ``/api/kernels/{id}/channels`` for its messages: Jupyter messages as
  JSON, each with a ``channel`` field (``shell`` for requests and replies, ``iopub`` for output).

A kernel is gone when the gateway says so: an ``iopub`` status ``restarting`` or ``dead`` (the
gateway restarts a kernel whose process died: the variables are lost all the same), a websocket
that closes, or a ``GET`` that no longer finds it (the gateway culled it). The pool then treats
it as it treats a local kernel that died.

**No shared disk.** The kernel's working directory is on the kernel's machine
(``<its temp dir>/ipyassistant/<thread id>``); the thread's directory on the server is its
mirror. The files of the mirror are sent into the kernel by executing code that writes them in
base64 chunks, and what the code saves in ``output/`` is read back into the mirror the same way,
so the code interpreter finds saved files where it finds those of a local kernel. That code runs
silently: nothing of it reaches the model, the user or the kernel's variables (it runs in a
namespace of its own).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import httpx
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from .kernel import KernelStartError, OutputHook, Stat, follow, run_quietly, scan_files

__all__ = ["Gateway", "GatewayKernel"]

log = logging.getLogger("ipyassistant.server")

#: The size of one piece of a file sent or fetched (as base64, a third more): well below the
#: websocket message limits of tornado, on both ends (10 MB by default).
_CHUNK = 1 << 20
#: Files larger than this in ``output/`` are not fetched (OpenAI's limit for one file).
_MAX_FETCH_BYTES = 512 << 20
#: How often a kernel silent while an execution waits is looked up on the gateway.
_POLL_SECONDS = 2.0
_PROTOCOL = "5.3"
#: How often a kernel's shutdown is asked for, half a second apart, before it is left to the
#: gateway's culling.
_DELETE_ATTEMPTS = 10

# The server's own code, run in the kernel as ``exec(SOURCE, {arguments})``: its names stay in
# that dictionary, out of the kernel's variables. Each prints its answer as JSON.
_ENTER = """\
import json, os, tempfile
root = os.path.join(tempfile.gettempdir(), 'ipyassistant', name)
os.makedirs(os.path.join(root, 'output'), exist_ok=True)
os.chdir(root)
print(json.dumps(root))
"""
_WRITE = """\
import base64, json, os
target = os.path.join(root, path)
part = os.path.join(os.path.dirname(target), '.' + os.path.basename(target) + '.part')
os.makedirs(os.path.dirname(target), exist_ok=True)
with open(part, 'ab' if offset else 'wb') as f:
    f.write(base64.b64decode(data))
if last:
    os.replace(part, target)
    s = os.stat(target)
    print(json.dumps([s.st_size, s.st_mtime_ns]))
"""
_LIST = """\
import json, os
found = {}
top = os.path.join(root, 'output')
for folder, dirs, names in os.walk(top):
    dirs[:] = [d for d in dirs if not d.startswith('.')]
    for name in names:
        if not name.startswith('.'):
            path = os.path.join(folder, name)
            try:
                s = os.stat(path)
            except OSError:
                continue
            found[os.path.relpath(path, root).replace(os.sep, '/')] = [s.st_size, s.st_mtime_ns]
print(json.dumps(found))
"""
_READ = """\
import base64, json, os
with open(os.path.join(root, path), 'rb') as f:
    f.seek(offset)
    print(json.dumps(base64.b64encode(f.read(size)).decode('ascii')))
"""


class GatewayError(KernelStartError):
    """The gateway answered with an HTTP error ``status``."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class Gateway:
    """A gateway's address, token and the kernel spec to ask for; speaks its REST API."""

    def __init__(self, url: str, token: str | None = None, kernel_name: str | None = None):
        self.url = url.rstrip("/")
        self.kernel_name = kernel_name
        self.headers = {"Authorization": f"token {token}"} if token else {}
        self._http: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._http = httpx.AsyncClient(headers=self.headers, timeout=30.0)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The JSON answer to ``method path``; None for 404. Raises :class:`KernelStartError`
        saying what went wrong (the gateway unreachable, the token refused, an error)."""
        if self._http is None:
            raise KernelStartError("The code interpreter is not running.")
        try:
            response = await self._http.request(method, self.url + path, json=body)
        except httpx.HTTPError as exc:
            raise KernelStartError(
                f"Could not reach the kernel gateway at {self.url}: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise self.refusal(response.status_code, response.reason_phrase, response.text)
        return response.json() if response.content else {}

    def refusal(self, status: int, reason: str, text: str = "") -> GatewayError:
        """The error for an HTTP error status from the gateway."""
        if status in (401, 403):
            return GatewayError(
                f"The kernel gateway at {self.url} refused the server's token (HTTP {status} "
                f"{reason}): check IPYASSISTANT_KERNEL_GATEWAY_TOKEN.",
                status,
            )
        try:
            detail = json.loads(text).get("message") or text
        except (ValueError, AttributeError):
            detail = text
        message = f"The kernel gateway at {self.url} answered HTTP {status} {reason}: {detail}"
        return GatewayError(message[:2000], status)

    async def connect(self, kernel_id: str, session: str) -> WebSocketClientConnection:
        """The kernel's websocket (``/api/kernels/{id}/channels``)."""
        base = "ws" + self.url[4:] if self.url.startswith("http") else self.url
        request = HTTPRequest(
            f"{base}/api/kernels/{kernel_id}/channels?session_id={session}", headers=self.headers
        )
        try:
            return await websocket_connect(request, max_message_size=_MAX_MESSAGE_BYTES)
        except HTTPClientError as exc:
            raise self.refusal(exc.code, exc.message or "") from exc
        except OSError as exc:
            raise KernelStartError(
                f"Could not reach the kernel gateway at {self.url}: {type(exc).__name__}: {exc}"
            ) from exc


#: Images the code displays come in one message each, as base64.
_MAX_MESSAGE_BYTES = 256 << 20


class GatewayKernel:
    """A kernel on a gateway: a :class:`~.kernel.PooledKernel`; see the module docstring."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        self.pid = 0
        self.last_used = time.monotonic()
        self.kernel_id: str | None = None
        self._session = uuid.uuid4().hex
        self._ws: WebSocketClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        #: iopub messages; None when the websocket closed.
        self._iopub: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        #: Why the kernel is gone, once it is.
        self._gone: str | None = None
        #: The working directory on the kernel's machine.
        self._root = ""
        #: Files (relative paths) alike in the mirror and the kernel: their stat in the mirror.
        self._synced: dict[str, Stat] = {}
        #: The files of ``output/`` in the kernel, as last seen: their stat there.
        self._remote: dict[str, Stat] = {}

    # -- life -----------------------------------------------------------------------------

    async def start(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._start(), timeout)
        except asyncio.TimeoutError:
            raise KernelStartError(
                f"The kernel gateway at {self.gateway.url} did not start a kernel within "
                f"{timeout:g} s."
            ) from None

    async def _start(self) -> None:
        body = {"name": self.gateway.kernel_name} if self.gateway.kernel_name else {}
        model = await self.gateway.request("POST", "/api/kernels", body)
        if not model or "id" not in model:
            raise KernelStartError(f"The kernel gateway at {self.gateway.url} started no kernel.")
        self.kernel_id = str(model["id"])
        self._ws = await self.gateway.connect(self.kernel_id, self._session)
        self._reader = asyncio.create_task(self._read(self._ws), name="ipyassistant-gateway")
        # Ask until the kernel answers: a request sent before it listens is lost.
        while True:
            msg_id = await self._send("kernel_info_request", {})
            reply = self._replies[msg_id] = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(reply, 1.0)
                return
            except asyncio.TimeoutError:
                if self._gone:
                    raise KernelStartError(f"The kernel on the gateway {self._gone}.") from None
            finally:
                self._replies.pop(msg_id, None)

    async def is_alive(self) -> bool:
        if self._gone is None and self.kernel_id is not None:
            try:
                model = await self.gateway.request("GET", f"/api/kernels/{self.kernel_id}")
            except KernelStartError as exc:
                self._gone = f"could not be reached ({exc})"
            else:
                if model is None:
                    self._gone = "was shut down by the gateway (culled, or lost)"
                elif model.get("execution_state") == "dead":
                    self._gone = "died (the gateway reported it dead)"
        return self._gone is None

    async def death(self) -> str:
        return self._gone or "died"

    async def interrupt(self) -> None:
        try:
            await self.gateway.request("POST", f"/api/kernels/{self.kernel_id}/interrupt", {})
        except KernelStartError:
            log.warning(
                "could not interrupt kernel %s on the gateway", self.kernel_id, exc_info=True
            )

    async def close(self) -> None:
        try:
            if self._reader is not None:
                self._reader.cancel()
            if self._ws is not None:
                self._ws.close()
            if self.kernel_id is not None:
                await self._delete()
        except Exception:
            log.warning(
                "could not shut kernel %s down on the gateway", self.kernel_id, exc_info=True
            )

    async def _delete(self) -> None:
        """``DELETE`` the kernel, again while the gateway fails to: jupyter_client's kernel
        manager cannot shut down a kernel it is restarting (after its process died)."""
        for attempt in range(_DELETE_ATTEMPTS):
            try:
                await self.gateway.request("DELETE", f"/api/kernels/{self.kernel_id}")
                return
            except GatewayError as exc:
                if exc.status < 500 or attempt == _DELETE_ATTEMPTS - 1:
                    raise
            await asyncio.sleep(0.5)

    # -- executing ------------------------------------------------------------------------

    async def execute(self, code: str, *, silent: bool = False) -> str:
        content = {
            "code": code,
            "silent": silent,
            "store_history": not silent,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        return await self._send("execute_request", content)

    async def collect(
        self, msg_id: str, seconds: float, on_output: OutputHook | None
    ) -> Literal["idle", "timeout", "died"]:
        return await follow(self._receive, self.is_alive, msg_id, seconds, on_output, _POLL_SECONDS)

    async def _receive(self, timeout: float) -> dict[str, Any] | None:
        """The next iopub message; None after ``timeout``, or once the kernel is gone (the
        reader saw it restart or die, or its websocket close: :meth:`is_alive` says so)."""
        if self._gone:
            return None
        try:
            msg = await asyncio.wait_for(self._iopub.get(), timeout)
        except asyncio.TimeoutError:
            return None
        return None if self._gone else msg

    async def _send(self, msg_type: str, content: dict[str, Any]) -> str:
        if self._ws is None or self._gone:
            raise KernelStartError(f"The kernel on the gateway {self._gone or 'is not started'}.")
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": "ipyassistant",
            "session": self._session,
            "date": datetime.now(timezone.utc).isoformat(),
            "version": _PROTOCOL,
        }
        message = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }
        await self._ws.write_message(json.dumps(message))
        return msg_id

    async def _read(self, ws: WebSocketClientConnection) -> None:
        """Route the kernel's messages: output to the queue, awaited replies to their waiter."""
        try:
            while (text := await ws.read_message()) is not None:
                msg = json.loads(text)
                channel = msg.get("channel")
                if channel == "iopub":
                    state = msg["content"].get("execution_state")
                    if msg["msg_type"] == "status" and state in ("restarting", "dead"):
                        self._gone = f"died (the gateway reported it {state})"
                    self._iopub.put_nowait(msg)
                elif channel == "shell":
                    waiter = self._replies.get(msg["parent_header"].get("msg_id", ""))
                    if waiter is not None and not waiter.done():
                        waiter.set_result(msg)
        except (ValueError, KeyError, AttributeError):
            log.warning("kernel %s sent a message that is not JSON", self.kernel_id, exc_info=True)
        finally:
            self._gone = self._gone or "died (its connection to the gateway closed)"
            self._iopub.put_nowait(None)

    # -- files ----------------------------------------------------------------------------

    async def enter(self, workdir: Path, timeout: float) -> None:
        out = await self._run(_ENTER, {"name": workdir.name}, timeout, "make its working directory")
        self._root = json.loads(out)
        self._synced.clear()
        self._remote = json.loads(await self._run(_LIST, {}, timeout, "list its output folder"))
        await self.send_files(workdir, timeout)

    async def send_files(self, workdir: Path, timeout: float) -> None:
        local = await asyncio.to_thread(scan_files, workdir, workdir)
        for path, stat in local.items():
            if self._synced.get(path) == stat:
                continue
            remote: Stat | None = None
            with (workdir / path).open("rb") as source:
                offset = 0
                while True:
                    data = await asyncio.to_thread(source.read, _CHUNK)
                    last = len(data) < _CHUNK
                    args = {
                        "path": path,
                        "data": base64.b64encode(data).decode("ascii"),
                        "offset": offset,
                        "last": last,
                    }
                    out = await self._run(_WRITE, args, timeout, f"receive {path}")
                    offset += len(data)
                    if last:
                        size, mtime = json.loads(out)
                        remote = (int(size), int(mtime))
                        break
            self._synced[path] = stat
            if path.startswith("output/") and remote is not None:
                self._remote[path] = remote  # sent, not saved by the code

    async def fetch_files(self, workdir: Path, timeout: float) -> None:
        listing = await self._run(_LIST, {}, timeout, "list its output folder")
        remote = {path: (int(s[0]), int(s[1])) for path, s in json.loads(listing).items()}
        for path in self._remote.keys() - remote.keys():  # deleted by the code
            (workdir / path).unlink(missing_ok=True)
            self._synced.pop(path, None)
        for path, stat in remote.items():
            if self._remote.get(path) == stat or stat[0] > _MAX_FETCH_BYTES:
                continue
            target = workdir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(f".{target.name}.part")
            with part.open("wb") as sink:
                for offset in range(0, max(stat[0], 1), _CHUNK):
                    args = {"path": path, "offset": offset, "size": _CHUNK}
                    out = await self._run(_READ, args, timeout, f"send back {path}")
                    await asyncio.to_thread(sink.write, base64.b64decode(json.loads(out)))
            os.replace(part, target)
            stat = target.stat()
            self._synced[path] = (stat.st_size, stat.st_mtime_ns)
        self._remote = remote

    async def _run(self, source: str, args: dict[str, Any], timeout: float, doing: str) -> str:
        """Run one of the server's snippets in the kernel; returns what it printed."""
        code = f"exec({source!r}, {{'root': {self._root!r}, **{args!r}}})"
        return await run_quietly(self, code, timeout, doing)
