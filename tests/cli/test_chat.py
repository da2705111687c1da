"""`chatgate chat` as a real process: piped stdin, errors, in-process fallback, Ctrl-C on a pty."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.cli.process import free_port
from tests.fakes.upstream import FakeUpstream

CHAT = [sys.executable, "-m", "chatgate.cli", "chat"]


def run_chat(stdin: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        [*CHAT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout, proc.stderr


def chat_bodies(fake: FakeUpstream) -> list[dict[str, object]]:
    return [r["body"] for r in fake.requests if r["path"] == "/v1/chat/completions"]


def test_piped_stdin_answers_each_line_and_keeps_history(
    gateway_url: str, fake: FakeUpstream
) -> None:
    fake.configure(content="Hi there!", chunks=3)
    rc, out, err = run_chat("hello\nsecond\n", "--url", gateway_url, "-m", "fake-model")
    assert (rc, err) == (0, "")
    assert out == "Hi there!\nHi there!\n"  # no prompts, no colours when piped
    first, second = chat_bodies(fake)
    assert first["stream"] is True
    assert first["messages"] == [{"role": "user", "content": "hello"}]
    assert second["messages"] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi there!"},
        {"role": "user", "content": "second"},
    ]


def test_commands_system_prompt_and_clear(gateway_url: str, fake: FakeUpstream) -> None:
    fake.configure(content="ok", chunks=1)
    stdin = "one\n/clear\n/model fake-reasoner\ntwo\n/exit\nnever sent\n"
    rc, out, _ = run_chat(stdin, "--url", gateway_url, "-m", "fake-model", "--system", "Be brief.")
    assert rc == 0
    assert "(model: fake-reasoner)" in out
    first, second = chat_bodies(fake)
    assert second["model"] == "fake-reasoner"
    system = {"role": "system", "content": "Be brief."}
    assert first["messages"] == [system, {"role": "user", "content": "one"}]
    assert second["messages"] == [system, {"role": "user", "content": "two"}]


def test_reasoning_comes_before_the_answer(gateway_url: str, fake: FakeUpstream) -> None:
    fake.configure(reasoning="Let me think.", content="The answer.", chunks=2)
    rc, out, _ = run_chat("why?\n", "--url", gateway_url, "-m", "fake-model")
    assert rc == 0
    assert out == "Let me think.\n\nThe answer.\n"
    assert "reasoning_content" not in str(chat_bodies(fake)[-1]["messages"])
    # --reasoning travels as X-Chatgate-Reasoning: the gateway strips it
    rc, out, _ = run_chat(
        "why?\n", "--url", gateway_url, "-m", "fake-model", "--reasoning", "strip"
    )
    assert (rc, out) == (0, "The answer.\n")


def test_errors_print_one_line_and_the_session_goes_on(
    gateway_url: str, fake: FakeUpstream
) -> None:
    fake.configure(content="fine", chunks=1)
    stdin = "hi\n/model fake-model\nagain\n"
    rc, out, err = run_chat(stdin, "--url", gateway_url, "-m", "no-such-model")
    assert rc == 0
    assert err.count("error:") == 1
    assert "no-such-model" in err and "does not exist" in err
    assert out.endswith("fine\n")
    # the failed question was not kept in the history
    assert chat_bodies(fake)[-1]["messages"] == [{"role": "user", "content": "again"}]


def test_runs_the_gateway_in_process_when_nothing_listens(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    config = tmp_path / "chatgate.yaml"
    config.write_text(
        f"discover_env: false\nlocal_model: false\ndatabase: {{url: 'sqlite:///{tmp_path}/db'}}\n"
        "providers:\n"
        f"  fake: {{type: openai, base_url: '{fake.base_url}/v1', models: [fake-model]}}\n",
        encoding="utf-8",
    )
    fake.configure(content="from afar", chunks=2)
    url = f"http://127.0.0.1:{free_port()}"
    rc, out, err = run_chat(
        "hi\n", "--url", url, "-m", "fake-model", env={"CHATGATE_CONFIG": str(config)}
    )
    assert rc == 0
    assert out == "from afar\n"
    assert f"no chatgate at {url}; using the local model in-process" in err
    assert chat_bodies(fake)[-1]["messages"] == [{"role": "user", "content": "hi"}]


class Pty:
    """The chat on a pseudo-terminal that is its controlling tty, so ^C is a real SIGINT."""

    def __init__(self, *args: str) -> None:
        master, slave = os.openpty()
        self.master = master
        self.proc = subprocess.Popen(
            [*CHAT, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            env={**os.environ, "TERM": "dumb"},
        )
        os.close(slave)
        self.output = ""

    def expect(self, text: str, start: int = 0, timeout: float = 10) -> int:
        """Wait until ``text`` appears after ``start``; return the offset just past it."""
        deadline = time.monotonic() + timeout
        while (at := self.output.find(text, start)) < 0:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not seen in {self.output[start:]!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.output += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the child closed the pty
                    raise AssertionError(f"{text!r} not seen; exit {self.proc.wait()}") from None
        return at + len(text)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_ctrl_c_stops_the_answer_and_keeps_the_session(
    gateway_url: str, fake: FakeUpstream
) -> None:
    fake.configure(reasoning="hmm", chunk_delay_ms=100, chunks=100)
    chat = Pty("--url", gateway_url, "-m", "fake-model")
    try:
        at = chat.expect("> ")
        chat.send("tell me a long story\r")
        at = chat.expect("\x1b[2mh", at)  # reasoning, dimmed on a terminal
        at = chat.expect("tok1 ", at)
        chat.send("\x03")
        at = chat.expect("[stopped]", at)
        at = chat.expect("> ", at)
        deadline = time.monotonic() + 5
        while fake.cancelled < 1:
            assert time.monotonic() < deadline, "the upstream call was not cancelled"
            time.sleep(0.02)

        fake.configure(reasoning=None, chunk_delay_ms=0, chunks=2, content="The end.")
        chat.send("and then?\r")
        at = chat.expect("The end.", at)
        at = chat.expect("> ", at)
        messages = chat_bodies(fake)[-1]["messages"]
        assert isinstance(messages, list) and len(messages) == 3
        partial = messages[1]
        assert partial["role"] == "assistant" and partial["content"].startswith("tok0 tok1 ")
        assert "tok99" not in partial["content"]  # partial: the answer was cut short

        chat.send("\x04")  # Ctrl-D at the prompt leaves
        assert chat.proc.wait(timeout=5) == 0
    finally:
        chat.close()


def test_ctrl_c_at_the_prompt_leaves(gateway_url: str) -> None:
    chat = Pty("--url", gateway_url, "-m", "fake-model")
    try:
        chat.expect("> ")
        # a SIGINT landing between the prompt's write and readline's select() is only seen at
        # the next key press; a person's Ctrl-C never hits that window, a test can
        time.sleep(0.3)
        chat.send("\x03")
        assert chat.proc.wait(timeout=5) == 0
    finally:
        chat.close()
