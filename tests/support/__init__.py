"""What many test files need, in one place: a free port, a lockgate server process started and
polled until ready, the admin token and its header, an OpenAI-compatible judge on loopback. Import as
``from tests.support import ...``."""

from tests.support.judge import JUDGE_PROMPT, JudgeServer
from tests.support.server import AUTH, TOKEN, ServerProcess, free_port, start_server, wait_until

__all__ = [
    "AUTH",
    "JUDGE_PROMPT",
    "TOKEN",
    "JudgeServer",
    "ServerProcess",
    "free_port",
    "start_server",
    "wait_until",
]
