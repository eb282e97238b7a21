"""An OpenAI-compatible endpoint the gate calls: the LLM judge, or a served model answering the
evaluation set (vLLM, llama.cpp's server, Ollama, a hosted API, a lockgate server).

One request at a time, ``temperature`` 0 and the policy's seed; every failure is named with the
endpoint's URL and the example: a refused key or a rejected request is bad input (exit 2), an
endpoint that cannot be reached, times out or fails with a 5xx is an outage (exit 3).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from lockgate.errors import Unavailable, UserError

if TYPE_CHECKING:
    from lockgate.gates.checks.generation import EndpointSpec

__all__ = ["ChatEndpoint", "endpoint_api_key"]


def endpoint_api_key(env: str | None, key: str) -> str | None:
    """The API key in environment variable ``env`` (None when none is named); a variable that is named
    but not set is a :class:`UserError` naming the policy ``key`` (``judge.api_key_env``)."""
    if env is None:
        return None
    value = os.environ.get(env, "")
    if not value:
        raise UserError(
            f"{key} names the environment variable {env}, which is not set",
            hint=f"export {env}=<the endpoint's API key>, or remove {key.rsplit('.', 1)[-1]} for an "
            "endpoint that needs none",
        )
    return value


class ChatEndpoint:
    """``spec``'s endpoint, with ``api_key`` as a bearer token; ``what`` names it in messages."""

    def __init__(
        self,
        spec: EndpointSpec,
        *,
        what: str,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.spec = spec
        self.what = what
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=spec.url, headers=headers, timeout=spec.timeout_s, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ChatEndpoint:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def answer(
        self,
        prompt: str,
        *,
        where: str,
        max_tokens: int,
        seed: int,
        stop: Sequence[str] = (),
        is_chat: bool = True,
    ) -> str:
        """The endpoint's text for ``prompt``: as one user message (``/chat/completions``), or, with
        ``is_chat`` false, as a raw prompt (``/completions``)."""
        body: dict[str, Any] = {
            "model": self.spec.model,
            "max_tokens": max_tokens,
            "temperature": 0,
            "seed": seed,
        }
        if stop:
            body["stop"] = list(stop)
        if is_chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        path = "/chat/completions" if is_chat else "/completions"
        return self._text(self._post(path, body, where), path, where, is_chat=is_chat)

    def _post(self, path: str, body: dict[str, Any], where: str) -> httpx.Response:
        url = f"{self.spec.url}{path}"
        try:
            response = self._client.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise Unavailable(
                f"{self.what} at {url} did not answer {where} within {self.spec.timeout_s:g} s",
                hint="raise timeout_s or check the endpoint",
            ) from exc
        except httpx.TransportError as exc:
            raise Unavailable(
                f"{self.what} at {url} cannot be reached: {exc}", hint="start the endpoint or fix its url"
            ) from exc
        if response.status_code in (401, 403):
            raise UserError(
                f"{self.what} at {url} refused the request ({response.status_code}): {response.text[:200]}",
                hint="set api_key_env to the variable holding a valid API key",
            )
        if response.status_code >= 500:
            raise Unavailable(
                f"{self.what} at {url} failed on {where} ({response.status_code}): {response.text[:200]}",
                hint="retry later, or check the endpoint's log",
            )
        if response.status_code >= 400:
            raise UserError(
                f"{self.what} at {url} rejected {where} ({response.status_code}): {response.text[:200]}",
                hint="check the model name and max_tokens against the endpoint",
            )
        return response

    def _text(self, response: httpx.Response, path: str, where: str, *, is_chat: bool) -> str:
        try:
            doc: Any = response.json()
            choice = doc["choices"][0]
            content = choice["message"]["content"] if is_chat else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise UserError(
                f"{self.what} at {self.spec.url}{path} answered {where} with no completion: "
                f"{response.text[:200]!r}",
                hint="the url must be an OpenAI-compatible base URL (ending in /v1)",
            ) from exc
        if not isinstance(content, str):
            raise UserError(f"{self.what} at {self.spec.url}{path} answered {where} with no text")
        return content
