"""Local model benchmark: the whole stack against llama-cpp-python alone, in the same run.

The stack: the SDK client streams a run of ``model="local"`` (SmolLM2-135M, greedy decoding)
from the server, which drives llama.cpp on its worker thread and forwards every token as a
``thread.message.delta`` event. The baseline: llama-cpp-python generating the same prompt (the
same tokens: the chat template's output for the same conversation) and the same number of
tokens directly, in a tight ``Llama.generate`` loop that decodes each token to text.

Reported for interleaved trials (the machine is shared, so trials alternate), best and median:

1. decode speed: tokens per second between the first and the last token (stack / direct,
   target >= 0.9), and end to end (from the request to the last token);
2. time to first token: from the request (stack) or the call (direct) to the first token.

Greedy decoding makes both sides produce the identical text, which is checked. Both sides
start from a warm prompt cache (a warm-up trial runs first), as a follow-up turn would.

The server runs embedded in this process (as in a notebook; the baseline uses the very model
instance the server loaded) and, with ``--served``, also as a separate ``ipyassistant serve``
process (the baseline then loads its own copy with the same settings).

    python bench/local_model.py [--tokens 256] [--repeat 5] [--served]
"""

from __future__ import annotations

import argparse
import codecs
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

warnings.filterwarnings("ignore", category=DeprecationWarning)

PROMPT = "Write a long story about a dragon."
INSTRUCTIONS = "You are a storyteller."


@dataclass
class Trial:
    ttft: float  # request (or call) to first token
    decode: float  # first token to last token
    total: float  # request (or call) to last token
    tokens: int
    text: str

    @property
    def decode_rate(self) -> float:
        return (self.tokens - 1) / self.decode

    @property
    def total_rate(self) -> float:
        return self.tokens / self.total


def stack_trial(client: openai.OpenAI, assistant_id: str, tokens: int) -> Trial:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": PROMPT}])
    text: list[str] = []
    first = last = 0.0
    start = time.perf_counter()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id, max_completion_tokens=tokens
    ) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                last = time.perf_counter()
                first = first or last
                for part in event.data.delta.content or []:
                    text.append(part.text.value)  # type: ignore[union-attr]
    run = stream.get_final_run()
    if run.status not in ("completed", "incomplete") or run.usage is None:
        raise SystemExit(f"the run ended {run.status}: {run.last_error}")
    return Trial(first - start, last - first, last - start, run.usage.completion_tokens, "".join(text))


def direct_trial(llama: Any, prompt: list[int], tokens: int) -> Trial:
    import llama_cpp

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    vocab = llama._model.vocab
    text: list[str] = []
    count = 0
    first = last = 0.0
    start = time.perf_counter()
    for token in llama.generate(prompt, temp=0.0, top_p=1.0):
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        text.append(decoder.decode(llama.detokenize([token])))
        count += 1
        last = time.perf_counter()
        first = first or last
        if count >= tokens:
            break
    return Trial(first - start, last - first, last - start, count, "".join(text).lstrip())


def prompt_tokens(llama: Any) -> list[int]:
    """The tokens the provider feeds llama.cpp for PROMPT under INSTRUCTIONS."""
    from ipyassistant.server.models import local
    from ipyassistant.server.models.base import ChatMessage

    chat = local._chat_messages([ChatMessage("system", INSTRUCTIONS), ChatMessage("user", PROMPT)], "")
    return local._tokenize(llama, local._render(llama, chat, "local"))


def compare(label: str, client: openai.OpenAI, llama: Any, tokens: int, repeat: int) -> None:
    assistant = client.beta.assistants.create(model="local", instructions=INSTRUCTIONS, temperature=0)
    prompt = prompt_tokens(llama)
    stack_trial(client, assistant.id, tokens)  # warm up: model loaded, prompt cached
    direct_trial(llama, prompt, tokens)
    stack: list[Trial] = []
    direct: list[Trial] = []
    for _ in range(repeat):
        stack.append(stack_trial(client, assistant.id, tokens))
        direct.append(direct_trial(llama, prompt, tokens))

    def med(trials: list[Trial], key: str) -> float:
        return statistics.median(getattr(t, key) for t in trials)

    def best(trials: list[Trial], key: str) -> float:
        # Noise on a shared machine only ever slows a trial down: the best one is the signal.
        values = [getattr(t, key) for t in trials]
        return max(values) if key.endswith("rate") else min(values)

    n = stack[-1].tokens
    same = all(s.text == d.text and s.tokens == d.tokens for s, d in zip(stack, direct, strict=True))
    print(f"[{label}] {n} tokens, prompt of {len(prompt)} tokens, {repeat} interleaved trials (best | median)")
    print(f"    identical text and token count on both sides : {same}")
    for title, key, unit, scale in (
        ("decode (first to last token)", "decode_rate", "tokens/s", 1.0),
        ("end to end (request to last token)", "total_rate", "tokens/s", 1.0),
        ("time to first token", "ttft", "ms", 1000.0),
    ):
        d_best, s_best = best(direct, key) * scale, best(stack, key) * scale
        d_med, s_med = med(direct, key) * scale, med(stack, key) * scale
        target = "  (target >= 0.9)" if key == "decode_rate" else ""
        print(f"    {title}")
        print(f"        direct llama-cpp-python : {d_best:7.1f} | {d_med:7.1f} {unit}")
        print(f"        SDK streaming a run     : {s_best:7.1f} | {s_med:7.1f} {unit}")
        print(f"        ratio stack / direct    : {s_best / d_best:7.2f} | {s_med / d_med:7.2f}{target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=256, help="tokens per reply (the API's minimum is 256)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--served", action="store_true", help="also against a separate `ipyassistant serve` process")
    args = parser.parse_args()

    from ipyassistant.server import embedded
    from ipyassistant.server.models import local

    path = local.bundled_model_path()
    if path is None or not local.local_available():
        raise SystemExit(f"the local model is not installed: {local.INSTALL_HINT}")
    with tempfile.TemporaryDirectory() as tmp:
        info = embedded.start(data_dir=Path(tmp) / "embedded")
        client = openai.OpenAI(base_url=info.base_url, api_key=info.api_key, max_retries=0, timeout=600)
        try:
            instance = local._instance(path.resolve())
            compare("embedded server, same model instance", client, instance.load(), args.tokens, args.repeat)
        finally:
            client.close()
            embedded.stop()
        if args.served:
            sys.path.insert(0, str(Path(__file__).parent))
            from server_stream import KEY, ServeProcess

            server = ServeProcess(Path(tmp) / "served")
            client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=600)
            try:
                compare("separate server process", client, local._load(path.resolve()), args.tokens, args.repeat)
            finally:
                client.close()
                server.close()


if __name__ == "__main__":
    main()
