"""The code interpreter: runs the model's Python in the thread's Jupyter kernel, on the server.

OpenAI's code interpreter ran in a hosted sandbox; this one runs in a Jupyter kernel per
thread (see :mod:`.kernels`), never in the user's notebook kernel. Each thread has a working
directory, ``<data dir>/code_interpreter/<thread id>/``:

- the files attached to the thread's messages for ``code_interpreter``, and the assistant's
  and the thread's ``tool_resources.code_interpreter.file_ids``, are copied into it under their
  own names (renamed only on a clash), and the model is told their paths;
- files the code saves in its ``output/`` folder become Files API files (purpose
  ``assistants_output``) that the assistant's next message cites with ``file_path``
  annotations;
- every image the code displays (``plt.show()``, ``display(img)``; PNG and JPEG) becomes a
  Files API file, an ``image`` output of the tool call and an ``image_file`` block of the
  assistant's next message.

Stdout, stderr, results and tracebacks (ANSI colours stripped) become one ``logs`` output, cut
in the middle beyond ``code_output_chars`` characters. The model gets the logs and the
references to images and files as the tool result.

Unless ``code_sandbox`` is ``bwrap`` (see :mod:`.sandbox`), the kernel is a separate process
with resource limits, not a security sandbox: see :mod:`.kernels`. With a kernel gateway
(``kernel_gateway_url``) the kernels run where the gateway puts them, and the thread's directory
here mirrors theirs (see :mod:`.gateway`): the contract above holds all the same.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import shutil
from collections import deque
from pathlib import Path
from typing import Any

from . import objects
from .code_runner import CodeOutput
from .config import ServerConfig
from .errors import NotFound
from .files import FileStore
from .gateway import Gateway
from .kernel import Stat, scan_files
from .kernels import KernelPool
from .store import Store, Tx, new_id

__all__ = ["CodeInterpreter"]

log = logging.getLogger("ipyassistant.server")

#: The folder, inside the working directory, whose new files are given to the user.
OUTPUT_DIR = "output"
#: Beyond these, images and saved files of one execution are dropped (and the logs say so).
MAX_IMAGES = 20
MAX_SAVED_FILES = 20
#: OpenAI's limit for one file.
MAX_SAVED_FILE_BYTES = 512 * 1024 * 1024

_IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg"}
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_UNSAFE_NAME = re.compile(r"[^\w.\- ()+,@=]")
_THREAD_ID = re.compile(r"^[A-Za-z0-9_\-]+$")
_MAX_WORKSPACES = 1000


class CodeInterpreter:
    """Runs code-interpreter calls: the engine's :class:`~.code_runner.CodeRunner`."""

    def __init__(self, config: ServerConfig, files: FileStore, store: Store):
        self.config = config
        self.files = files
        self.store = store
        self.root = config.code_dir
        self.pool = KernelPool(
            python=config.code_python,
            memory_mb=config.code_memory_mb,
            max_kernels=config.code_max_kernels,
            idle_seconds=config.code_kernel_ttl_seconds,
            warm=config.code_warm_kernels,
            interrupt_grace=config.code_interrupt_grace_seconds,
            sandbox=config.code_sandbox,
            network=config.code_network,
            hidden=config.private_dirs,
            gateway=(
                Gateway(
                    config.kernel_gateway_url,
                    config.kernel_gateway_token,
                    config.kernel_gateway_kernel,
                )
                if config.kernel_gateway_url
                else None
            ),
        )
        self._spaces: dict[str, _Workspace] = {}

    async def start(self) -> None:
        """Start the warm pool in the background; returns at once."""
        await self.pool.start()

    async def stop(self) -> None:
        """Shut every kernel down; when this returns no kernel process is left."""
        await self.pool.stop()

    # -- the engine's CodeRunner ----------------------------------------------------------

    async def prepare(self, run: dict[str, Any], tx: Tx) -> str:
        """Note which files the run gives the code (copied before it runs); tell the model."""
        space = self._workspace(run["thread_id"])
        if space.note_for == run["id"]:
            return space.note  # a later model call of the same run: nothing new to look up
        for file_id, filename in await _input_files(run, tx):
            space.add_input(file_id, filename)
        # On a gateway the kernel's directory is on another machine, named when it starts.
        where = (
            "; use paths relative to its working directory"
            if self.pool.gateway
            else f" whose working directory is {space.root}"
        )
        lines = [
            "The python tool runs your code in a Jupyter kernel (variables persist between "
            f"calls){where}."
        ]
        names = space.input_names()
        if names:
            lines.append("Files there for you to use: " + ", ".join(names) + ".")
        lines.append(
            f"To give the user a file, save it in the {OUTPUT_DIR}/ folder "
            f"(e.g. {OUTPUT_DIR}/result.csv) and mention that path in your reply."
        )
        space.note_for, space.note = run["id"], "\n".join(lines)
        return space.note

    async def run_code(self, run: dict[str, Any], code: str) -> CodeOutput:
        """Execute ``code`` in the run's thread kernel; store the images and saved files."""
        space = self._workspace(run["thread_id"])
        await asyncio.to_thread(space.materialise, self.files)
        before = await asyncio.to_thread(space.scan_outputs)
        logs = _Logs(self.config.code_output_chars)
        images: list[tuple[str, bytes]] = []
        dropped_images = 0

        def on_output(kind: str, content: dict[str, Any]) -> None:
            nonlocal dropped_images
            if kind == "stream":
                logs.write(str(content.get("text", "")))
            elif kind in ("display_data", "execute_result"):
                data = content.get("data") or {}
                image = next((m for m in _IMAGE_TYPES if m in data), None)
                if image is None:
                    if "text/plain" in data:
                        logs.write(str(data["text/plain"]) + "\n")
                elif len(images) >= MAX_IMAGES:
                    dropped_images += 1
                else:
                    try:
                        images.append((image, base64.b64decode(data[image])))
                    except (binascii.Error, TypeError, ValueError):
                        logs.write(f"[an {image} image could not be decoded]\n")
            elif kind == "error":
                traceback = content.get("traceback") or [
                    f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"
                ]
                logs.write("\n".join(traceback) + "\n")

        timeout = self.config.code_timeout_seconds
        result = await self.pool.execute(space.thread_id, space.root, code, timeout, on_output)
        saved = _changed(before, await asyncio.to_thread(space.scan_outputs))

        notes: list[str] = []
        if result.fresh and space.used:
            why = f"the previous one {result.previous}" if result.previous else "a restart"
            # A kernel on a gateway gets the thread's files and output/ again, not scratch files.
            kept = (
                "the files given and saved in output/"
                if self.pool.gateway
                else "files in the working directory"
            )
            notes.append(
                f"[This code ran in a new kernel after {why}: variables from earlier "
                f"executions are gone; {kept} remain.]"
            )
        space.mark_used()
        text = "".join(notes) + ("\n" if notes else "") + logs.text()
        tail: list[str] = []
        if result.outcome == "timeout":
            tail.append(f"Execution timed out after {timeout:g} s and was interrupted.")
        tail += result.notes
        if dropped_images:
            tail.append(f"[{dropped_images} more images were not kept (at most {MAX_IMAGES}).]")

        image_ids, saved_files, skipped = await self._store_files(space, images, saved)
        if saved_files:
            tail.append(
                "Files saved for the user (mention them by path): "
                + ", ".join(path for path, _ in saved_files)
            )
        tail += skipped
        if tail:
            text = text + ("\n" if text and not text.endswith("\n") else "") + "\n".join(tail)
        return CodeOutput(logs=text, image_file_ids=image_ids, saved_files=saved_files)

    async def discard_thread(self, thread_id: str, *, remove_files: bool = False) -> None:
        """Shut the thread's kernel down; with ``remove_files``, delete its working directory."""
        await self.pool.discard_thread(thread_id)
        self._spaces.pop(thread_id, None)
        if remove_files and _THREAD_ID.match(thread_id):
            await asyncio.to_thread(shutil.rmtree, self.root / thread_id, True)
            (self.root / f"{thread_id}.json").unlink(missing_ok=True)

    # -- files ----------------------------------------------------------------------------

    def _workspace(self, thread_id: str) -> _Workspace:
        space = self._spaces.get(thread_id)
        if space is None:
            if not _THREAD_ID.match(thread_id):
                raise ValueError(f"invalid thread id {thread_id!r}")
            space = self._spaces[thread_id] = _Workspace(self.root, thread_id)
            if len(self._spaces) > _MAX_WORKSPACES:  # forgetting one costs a re-read only
                del self._spaces[next(iter(self._spaces))]
        return space

    async def _store_files(
        self, space: _Workspace, images: list[tuple[str, bytes]], saved: list[str]
    ) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        """Images and saved files as Files API files: (image ids, (path, id) pairs, notes)."""
        rows: list[dict[str, Any]] = []
        image_ids: list[str] = []
        saved_files: list[tuple[str, str]] = []
        notes: list[str] = []
        for mime, data in images:
            file_id = new_id("file")
            size = await asyncio.to_thread(self.files.write_bytes, file_id, data)
            suffix = _IMAGE_TYPES[mime]
            rows.append(
                objects.file_object(
                    file_id, f"image-{file_id[5:13]}.{suffix}", size, "assistants_output"
                )
            )
            image_ids.append(file_id)
        for i, path in enumerate(saved):
            source = space.root / path
            if i >= MAX_SAVED_FILES:
                notes.append(f"[{path} was not kept: at most {MAX_SAVED_FILES} files per run.]")
                continue
            try:
                if source.stat().st_size > MAX_SAVED_FILE_BYTES:
                    notes.append(f"[{path} was not kept: it is larger than 512 MB.]")
                    continue
                file_id = new_id("file")
                size = await asyncio.to_thread(_copy_in, self.files, file_id, source)
            except OSError as exc:
                notes.append(f"[{path} could not be read: {exc.strerror or exc}]")
                continue
            rows.append(objects.file_object(file_id, source.name, size, "assistants_output"))
            saved_files.append((path, file_id))
        if rows:
            try:
                async with self.store.tx() as tx:
                    # The files of the thread's owner, like the run that made them.
                    await tx.insert_many("file", rows, parent=("thread", space.thread_id))
            except BaseException:
                for row in rows:
                    self.files.delete(row["id"])
                raise
        return image_ids, saved_files, notes


class _Workspace:
    """A thread's working directory and the record of the input files copied into it.

    The record (``<thread id>.json`` beside the directory) maps file ids to the names they
    were given, so that a name stays put across runs and a file is copied once.
    """

    def __init__(self, root: Path, thread_id: str):
        self.thread_id = thread_id
        self.root = root / thread_id
        self.record = root / f"{thread_id}.json"
        self.inputs: dict[str, dict[str, Any]] = {}
        self.used = False
        #: The note :meth:`CodeInterpreter.prepare` made, and for which run.
        self.note_for = ""
        self.note = ""
        try:
            saved = json.loads(self.record.read_text())
            self.inputs = dict(saved.get("inputs", {}))
            self.used = bool(saved.get("used"))
        except (OSError, ValueError, AttributeError):
            pass

    def add_input(self, file_id: str, filename: str) -> None:
        if file_id in self.inputs:
            return
        name = _safe_name(filename) or file_id
        taken = {entry["name"] for entry in self.inputs.values()} | {OUTPUT_DIR}
        if name in taken or (self.root / name).exists():
            stem, dot, suffix = name.partition(".")
            name = f"{stem}-{file_id}{dot}{suffix}"
        self.inputs[file_id] = {"name": name, "copied": False}
        self._save()

    def input_names(self) -> list[str]:
        return [entry["name"] for entry in self.inputs.values()]

    def materialise(self, files: FileStore) -> None:
        """Create the directory and copy the input files not copied yet (blocking)."""
        (self.root / OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
        changed = False
        for file_id, entry in self.inputs.items():
            if entry["copied"]:
                continue
            try:
                _copy_out(files.path(file_id), self.root / entry["name"])
            except OSError:
                log.warning("could not copy %s into %s", file_id, self.root, exc_info=True)
                continue
            entry["copied"] = changed = True
        if changed:
            self._save()

    def mark_used(self) -> None:
        if not self.used:
            self.used = True
            self._save()

    def scan_outputs(self) -> dict[str, Stat]:
        """The output folder's files: relative path -> (size, mtime in ns); hidden ones skipped."""
        return scan_files(self.root / OUTPUT_DIR, self.root)

    def _save(self) -> None:
        self.record.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(json.dumps({"inputs": self.inputs, "used": self.used}))
        os.replace(tmp, self.record)


class _Logs:
    """Text output with a size limit: keeps the head and the tail, counts what it drops.

    It never holds much more than the limit, even when the code prints for minutes.
    """

    def __init__(self, limit: int):
        self.head_limit = max(limit, 0) // 2
        self.tail_limit = max(limit, 0) - self.head_limit
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.dropped = 0

    def write(self, text: str) -> None:
        text = _ANSI.sub("", text)
        if self.head_size < self.head_limit:
            part = text[: self.head_limit - self.head_size]
            self.head.append(part)
            self.head_size += len(part)
            text = text[len(part) :]
        if not text:
            return
        self.tail.append(text)
        self.tail_size += len(text)
        while self.tail_size > self.tail_limit and self.tail:
            excess = self.tail_size - self.tail_limit
            first = self.tail[0]
            if len(first) <= excess:
                self.tail.popleft()
                cut = len(first)
            else:
                self.tail[0] = first[excess:]
                cut = excess
            self.tail_size -= cut
            self.dropped += cut

    def text(self) -> str:
        head = "".join(self.head)
        tail = "".join(self.tail)
        if not self.dropped:
            return head + tail
        return f"{head}\n[... {self.dropped} characters of output omitted ...]\n{tail}"


async def _input_files(run: dict[str, Any], tx: Tx) -> list[tuple[str, str]]:
    """(file id, filename) of the files the run gives the code interpreter, in order."""
    ids: list[str] = []
    for kind, object_id in (("assistant", run["assistant_id"]), ("thread", run["thread_id"])):
        try:
            owner = await tx.get(kind, object_id)
        except NotFound:
            continue
        resources = (owner.get("tool_resources") or {}).get("code_interpreter") or {}
        ids += resources.get("file_ids") or []
    for message in await tx.thread_messages(run["thread_id"]):
        for attachment in message.get("attachments") or []:
            if any(t.get("type") == "code_interpreter" for t in attachment.get("tools") or []):
                ids.append(attachment["file_id"])
    found: list[tuple[str, str]] = []
    for file_id in dict.fromkeys(ids):
        try:
            row = await tx.get("file", file_id)
        except NotFound:
            continue  # deleted since it was attached
        found.append((file_id, str(row["filename"])))
    return found


def _changed(before: dict[str, Stat], after: dict[str, Stat]) -> list[str]:
    return sorted(path for path, stat in after.items() if before.get(path) != stat)


def _safe_name(filename: str) -> str:
    """A client's filename as a plain name inside the working directory."""
    name = _UNSAFE_NAME.sub("_", Path(filename.replace("\\", "/")).name).strip(" .")
    return name[:200]


def _copy_out(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.part")
    with source.open("rb") as src, tmp.open("wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    os.replace(tmp, target)


def _copy_in(files: FileStore, file_id: str, source: Path) -> int:
    with source.open("rb") as src:
        return files.write(file_id, src)
