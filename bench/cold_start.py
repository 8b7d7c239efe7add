"""How long a fresh process waits for ipyassistant: its import, and its first reply.

Every measurement runs in a new process (the median of ``--rounds``, default 5), timed inside
that process so that the interpreter's own start is left out:

- ``import openai``, and ``import ipyassistant``: target <= 1.3x ``import openai`` (the client
  needs the SDK, so its import is the floor);
- ``from ipyassistant import Assistant`` (for information: what a script's first line costs);
- script: the first ``Assistant(model="test").say("hi", event_handler_class=None)`` right
  after ``import ipyassistant``, the embedded server starting on that first use (no target:
  a script pays for the SDK's Assistants modules and the server here);
- kernel: the same in a fresh Jupyter kernel (jupyter_client), ``import ipyassistant`` in one
  cell (its round trip is reported too: what it leaves out, the next cell pays) and
  ``say("hi")`` with its default live view in the next, after each of ``--pauses`` seconds
  (0: at once; 3: a person typing the next cell): the reply's time in the kernel (target
  <= 0.5 s) and when the view's first display message reached the front end.

Each process gets its own empty data directory; ``IPYASSISTANT_BASE_URL`` is removed so that
the embedded server is what answers. Run: ``python bench/cold_start.py`` (with ``PYTHONPATH``
pointing at the code to measure).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

TARGET_IMPORT_RATIO = 1.3
TARGET_KERNEL_SAY = 0.5

_IMPORT = """
import time
t = time.perf_counter()
import {module}
print(time.perf_counter() - t)
"""

_FROM_IMPORT = """
import time
t = time.perf_counter()
from ipyassistant import Assistant
print(time.perf_counter() - t)
"""

_SCRIPT_SAY = """
import time, warnings
warnings.simplefilter("ignore", DeprecationWarning)
import ipyassistant
t = time.perf_counter()
ipyassistant.Assistant(model="test").say("hi", event_handler_class=None)
print(time.perf_counter() - t)
"""

_KERNEL_SAY = """
import time, warnings
warnings.simplefilter("ignore", DeprecationWarning)
_t = time.perf_counter()
ipyassistant.Assistant(model="test").say("hi")
print("SAY", time.perf_counter() - _t)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("IPYASSISTANT_BASE_URL", None)
    env.pop("IPYASSISTANT_API_KEY", None)
    env["IPYASSISTANT_DATA_DIR"] = tempfile.mkdtemp(prefix="ipyassistant-cold-")
    return env


def in_fresh_process(code: str) -> float:
    """Run ``code`` in a new interpreter; the number it printed last."""
    done = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True
    )
    return float(done.stdout.split()[-1])


def in_fresh_kernel(pause: float) -> tuple[float, float, float]:
    """A new kernel: import, wait ``pause`` s, say; the import's, the say's, its display's time."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(
        kernel_name="python3", env=_env(), stderr=subprocess.DEVNULL
    )
    try:
        started = time.perf_counter()
        _execute(client, "import ipyassistant")
        imported = time.perf_counter() - started
        time.sleep(pause)
        sent = time.perf_counter()
        msg_id = client.execute(_KERNEL_SAY)
        shown: float | None = None
        said: float | None = None
        while True:
            msg = client.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "display_data" and shown is None:
                shown = time.perf_counter() - sent
            elif kind == "stream" and "SAY" in content["text"]:
                said = float(content["text"].split("SAY")[1].split()[0])
            elif kind == "error":
                raise RuntimeError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                break
        if said is None or shown is None:
            raise RuntimeError("the kernel neither answered nor showed a view")
        return imported, said, shown
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _execute(client: Any, code: str) -> None:
    reply = client.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(json.dumps(reply["content"]))


def median(measure: Any, rounds: int) -> float:
    return statistics.median(measure() for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--pauses", default="0,3", help="seconds between the kernel's cells, comma-separated"
    )
    parser.add_argument("--no-kernel", action="store_true", help="skip the kernel measurement")
    args = parser.parse_args()
    rounds = args.rounds

    import ipyassistant

    print(f"ipyassistant from {os.path.dirname(ipyassistant.__file__)}; median of {rounds}")
    openai_s = median(lambda: in_fresh_process(_IMPORT.format(module="openai")), rounds)
    ours_s = median(lambda: in_fresh_process(_IMPORT.format(module="ipyassistant")), rounds)
    from_s = median(lambda: in_fresh_process(_FROM_IMPORT), rounds)
    script_s = median(lambda: in_fresh_process(_SCRIPT_SAY), rounds)
    ratio = ours_s / openai_s
    rows = [
        ("import openai", f"{openai_s:.3f} s", ""),
        ("import ipyassistant", f"{ours_s:.3f} s", ""),
        ("  ratio", f"{ratio:.2f}x", _verdict(ratio, TARGET_IMPORT_RATIO, "x")),
        ("from ipyassistant import Assistant", f"{from_s:.3f} s", ""),
        ("script: first say() after import", f"{script_s:.3f} s", ""),
    ]
    for pause in [] if args.no_kernel else [float(p) for p in args.pauses.split(",")]:
        kernel = [in_fresh_kernel(pause) for _ in range(rounds)]
        imported, said, shown = (statistics.median(k[i] for k in kernel) for i in range(3))
        rows += [
            (f"kernel ({pause:g} s pause): the import cell", f"{imported:.3f} s", ""),
            (f"kernel: first say() {pause:g} s after import", f"{said:.3f} s", ""),
            ("  verdict", "", _verdict(said, TARGET_KERNEL_SAY, " s")),
            ("  its view displayed after", f"{shown:.3f} s", ""),
        ]
    for name, value, verdict in rows:
        print(f"{name:<44} {value:>9}  {verdict}")


def _verdict(value: float, target: float, unit: str) -> str:
    return f"{'ok' if value <= target else 'MISSED'} (target <= {target:g}{unit})"


if __name__ == "__main__":
    main()
