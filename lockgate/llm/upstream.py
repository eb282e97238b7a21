"""An upstream variant: an OpenAI-compatible endpoint (vLLM, llama.cpp's server, Ollama, a hosted
API, another lockgate) that lockgate forwards ``/v1/chat/completions`` and ``/v1/completions`` to.

A deployment spec's variant ``upstream:NAME`` is served by :class:`UpstreamPredictor`, built from
the spec's ``upstreams.endpoints.NAME`` and checked against ``upstreams.allowed_hosts``
(:mod:`lockgate.llm.hosts`) by the deployment loop (:mod:`lockgate.serving.deployment`). One pool
of kept-alive connections per upstream (:mod:`lockgate.llm.http1`); the host is resolved and every
address checked before connecting (again every few seconds), and the connection goes to the
address that was checked (the
``Host`` header and TLS name stay the host's), so a name re-pointed between the check and the
connection (DNS rebinding) reaches nothing unchecked. Redirects are not followed, and
proxies from the environment are not used.

The answer comes back as the :class:`~lockgate.llm.decoding.Chunk` s the local runtime yields,
so :mod:`lockgate.serving.completions` answers the client the same way for both: a stream is
forwarded chunk by chunk, and the upstream's ``usage`` is passed through. Failures are
:class:`~lockgate.errors.UpstreamError` (502) or :class:`~lockgate.errors.UpstreamTimeout` (504)
naming the upstream; a stream that stops mid-answer raises one of them after its last chunk, which
the server sends as a last server-sent event (and counts as the variant's error).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson

from lockgate.errors import LockgateError, ServiceUnavailable, UpstreamError, UpstreamTimeout, UserError
from lockgate.llm.decoding import Chunk, Usage
from lockgate.llm.hosts import (
    LIST_ADDRESS_HINT,
    UpstreamUrl,
    check_upstream_url,
    parse_allowed_hosts,
    resolved_refusal,
)
from lockgate.llm.http1 import (
    BrokenResponse,
    ConnectFailed,
    ConnectTimedOut,
    Http1Error,
    Http1Pool,
    ReadTimedOut,
    Response,
)
from lockgate.llm.params import ChatMessage, SamplingParams
from lockgate.llm.retries import RETRYABLE_STATUSES, RetryBudget
from lockgate.serving.protocol import ModelInput, Outputs
from lockgate.serving.signature import Signature

if TYPE_CHECKING:
    from lockgate.llm.decoding import FinishReason

__all__ = ["UNKNOWN_CONTEXT", "Endpoint", "UpstreamPredictor", "read_api_key"]

UNKNOWN_CONTEXT = 1_000_000  # the upstream checks max_tokens against its own model's context
_RESOLVE_TTL_S = 10.0
_MAX_ERROR_CHARS = 300
# what lockgate sets itself in the body it forwards; every other field goes as the client sent it
_OWN_FIELDS = (
    "model",
    "stream",
    "stream_options",
    "messages",
    "prompt",
    "variables",
)  # variables: rendered here

Resolver = Callable[[str, int], Sequence[str]]


class Endpoint(Protocol):
    """Where an upstream is and how to call it: a spec's
    :class:`~lockgate.rollout.spec.UpstreamEndpoint` (``upstreams.endpoints.NAME``)."""

    @property
    def url(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def api_key_env(self) -> str | None: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def connect_timeout_s(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def retry_budget(self) -> float: ...


def read_api_key(name: str, env_name: str | None, environ: Mapping[str, str]) -> str | None:
    """The API key from the variable the spec names (None when it names none)."""
    if env_name is None:
        return None
    key = environ.get(env_name)
    if not key:
        raise UserError(
            f"upstream '{name}': the environment variable {env_name} (its api_key_env) is not set",
            hint=f"set {env_name} to the API key in the server's environment, or remove api_key_env "
            "if the endpoint takes no key",
        )
    if any(c in key for c in "\r\n\0"):
        raise UserError(
            f"upstream '{name}': the API key in {env_name} holds a line break or NUL",
            hint=f"set {env_name} to the key alone (a file read with a trailing newline is a common cause)",
        )
    return key


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _chunk(text: str, finish_reason: Any = None, usage: Usage | None = None) -> Chunk:
    return Chunk(text, cast("FinishReason | None", finish_reason), usage)


def _usage(document: Any) -> Usage | None:
    usage = document.get("usage") if isinstance(document, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion)


class UpstreamPredictor:
    """An OpenAI-compatible endpoint behind the generative interface (:meth:`complete`)."""

    runtime = "openai-upstream"
    is_table_output = False
    is_generative = True
    context = UNKNOWN_CONTEXT

    def __init__(
        self,
        name: str,
        endpoint: Endpoint,
        allowed_hosts: Sequence[str],
        *,
        environ: Mapping[str, str] | None = None,
        resolve: Resolver = _resolve,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.signature = Signature("any")
        self.primary_output: str | None = None
        self.allowed = parse_allowed_hosts(allowed_hosts)
        self.target: UpstreamUrl = check_upstream_url(endpoint.url, self.allowed)
        # an address in the URL was checked above and is used as it is (worked out once: hot path)
        self._literal = self.target.host if self.target.address is not None else None
        self._api_key = read_api_key(name, endpoint.api_key_env, os.environ if environ is None else environ)
        self.budget = RetryBudget(endpoint.retry_budget)
        self.attempts = 0  # calls made to the upstream, retries included
        self._resolve = resolve
        self._resolved: tuple[str, float] | None = None  # (checked address, when)
        self._client: Http1Pool | None = None

    def __repr__(self) -> str:  # never the key
        return f"UpstreamPredictor({self.name!r}, {self.endpoint.url!r}, model={self.endpoint.model!r})"

    @property
    def what(self) -> str:
        return f"upstream '{self.name}' ({self.endpoint.url})"

    def load(self) -> None:
        """Check that the host resolves to addresses it may use (blocking: in the loading thread)."""
        self._address_now(time.monotonic(), is_loading=True)

    def predict(self, inputs: ModelInput) -> Outputs:
        raise UserError(
            f"{self.what} generates text: it is not called with tensors",
            hint="use POST /v1/completions or /v1/chat/completions",
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------ addresses

    def _address_now(self, now: float, *, is_loading: bool = False) -> str:
        """The address to connect to: resolved and checked (cached a few seconds)."""
        target = self.target
        if self._literal is not None:
            return self._literal
        if self._resolved is not None and now - self._resolved[1] < _RESOLVE_TTL_S:
            return self._resolved[0]
        try:
            addresses = list(self._resolve(target.host, target.port))
        except OSError as exc:
            if is_loading:
                raise UserError(
                    f"{self.what}: cannot resolve '{target.host}': {exc}",
                    hint="check the host name in upstreams.endpoints",
                ) from None
            raise UpstreamError(f"{self.what}: cannot resolve '{target.host}': {exc}") from None
        why = resolved_refusal(target, addresses, self.allowed)
        if why is not None:
            error = UserError if is_loading else UpstreamError
            raise error(f"{self.what} is refused: {why}", hint=LIST_ADDRESS_HINT)
        self._resolved = (addresses[0], now)
        return addresses[0]

    async def _address(self) -> str:
        if self._literal is not None:
            return self._literal
        now = time.monotonic()
        if self._resolved is not None and now - self._resolved[1] < _RESOLVE_TTL_S:
            return self._resolved[0]
        return await asyncio.to_thread(self._address_now, now)

    # ------------------------------------------------------------------ calls

    def _http(self) -> Http1Pool:
        if self._client is None:
            endpoint, target = self.endpoint, self.target
            # no proxy or .netrc from the environment, no redirects: the checked address is called
            self._client = Http1Pool(
                target.port,
                connect_timeout_s=endpoint.connect_timeout_s,
                read_timeout_s=endpoint.timeout_s,
                tls_name=target.host if target.scheme == "https" else None,
            )
        return self._client

    def _payload(
        self, request: str | Sequence[ChatMessage], body: Mapping[str, Any], *, is_stream: bool
    ) -> dict[str, Any]:
        payload = {k: v for k, v in body.items() if k not in _OWN_FIELDS}
        payload["model"] = self.endpoint.model
        if isinstance(request, str):
            payload["prompt"] = request
        else:
            payload["messages"] = [{"role": m.role, "content": m.content} for m in request]
        payload["stream"] = is_stream
        if is_stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    async def complete(
        self,
        request: str | Sequence[ChatMessage],
        params: SamplingParams,
        body: Mapping[str, Any],
        *,
        is_stream: bool,
    ) -> AsyncIterator[Chunk]:
        """Ask the upstream (a prompt: ``/completions``; messages: ``/chat/completions``) and
        return the answer's chunks. The call is made here, before the client's answer starts, so a
        refusal, a failure or a timeout is the client's 502/504; a stream is then read as it is
        iterated. ``params`` were checked by the caller; the fields go as the client sent them."""
        path = "/completions" if isinstance(request, str) else "/chat/completions"
        response = await self._send(path, self._payload(request, body, is_stream=is_stream))
        if not is_stream:
            try:
                chunk = await self._whole(response, is_chat=not isinstance(request, str))
            finally:
                await response.aclose()
            return _Chunks(_one(chunk), response)
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            try:
                await self._read_error(response)
            finally:
                await response.aclose()
        return _Chunks(self._events(response, is_chat=not isinstance(request, str)), response)

    async def _send(self, path: str, payload: dict[str, Any]) -> Response:
        """Send the request, retrying what cannot have reached the model while the budget lasts;
        the response is open (its body not read) and answered 2xx."""
        self.budget.deposit()
        content = orjson.dumps(payload)
        headers = [("host", self.target.host_header), ("content-type", "application/json")]
        if self._api_key is not None:
            headers.append(("authorization", f"Bearer {self._api_key}"))
        target = self.target.path + path
        retries = 0
        while True:
            failure: LockgateError
            address = await self._address()
            self.attempts += 1
            try:
                response = await self._http().request(address, "POST", target, headers, content)
            except ConnectTimedOut:
                failure = UpstreamTimeout(
                    f"{self.what} did not accept a connection within {self.endpoint.connect_timeout_s:g} s",
                    hint="check that it runs; raise upstreams.endpoints.*.connect_timeout_s if it is slow",
                )
            except ConnectFailed as exc:
                # refused, reset, or closed before a status line: a connection failure, before any answer
                failure = UpstreamError(
                    f"{self.what} could not be reached: {self._scrub(str(exc))}",
                    hint="check that it runs and that the URL is right",
                )
            except ReadTimedOut:
                raise self._timeout("answer") from None
            except Http1Error as exc:
                raise UpstreamError(f"{self.what} failed: {self._scrub(str(exc))}") from None
            else:
                if response.status_code not in RETRYABLE_STATUSES:
                    if response.status_code >= 300:
                        try:
                            await self._read_error(response)
                        finally:
                            await response.aclose()
                    return response
                try:
                    failure = await self._error_of(response)
                finally:
                    await response.aclose()
            if retries >= self.endpoint.retries or not self.budget.withdraw():
                raise failure
            retries += 1

    def _timeout(self, waiting_for: str) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"{self.what} sent no {waiting_for} within {self.endpoint.timeout_s:g} s",
            hint="raise upstreams.endpoints.*.timeout_s, or ask for fewer tokens",
        )

    def _scrub(self, text: str) -> str:
        """``text`` without the API key (an upstream may echo what it was sent), shortened."""
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text[:_MAX_ERROR_CHARS]

    async def _read_error(self, response: Response) -> None:
        """Raise the error a non-2xx answer (or a stream that is not one) stands for."""
        raise await self._error_of(response)

    async def _error_of(self, response: Response) -> LockgateError:
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("location", "?")
            return UpstreamError(
                f"{self.what} answered {status}, a redirect to '{self._scrub(location)}': "
                "redirects are not followed",
                hint="point upstreams.endpoints.*.url at the final address",
            )
        try:
            raw = await response.read()
        except ReadTimedOut:
            return self._timeout("answer")
        except Http1Error as exc:
            return UpstreamError(f"{self.what} answered {status} and then failed: {self._scrub(str(exc))}")
        message = self._scrub(_error_message(raw))
        if status in (400, 422):
            # the request's own fault (a field the upstream does not take): the client's 400
            return UserError(f"{self.what} refused the request: {message}", hint="check the request's fields")
        if status == 429:
            retry_after = response.headers.get("retry-after", "1")
            return ServiceUnavailable(
                f"{self.what} is rate limiting: {message}",
                retry_after_s=float(retry_after) if retry_after.isdigit() else 1.0,
            )
        if 200 <= status < 300:
            kind = response.headers.get("content-type", "no content type")
            return UpstreamError(
                f"{self.what} answered a stream request with {kind}, not server-sent events: {message}"
            )
        return UpstreamError(f"{self.what} answered {status}: {message}", hint=_hint_for(status))

    async def _whole(self, response: Response, *, is_chat: bool) -> Chunk:
        """The one chunk of a whole (not streamed) answer."""
        try:
            raw = await response.read()
        except ReadTimedOut:
            raise self._timeout("answer") from None
        except Http1Error as exc:
            raise UpstreamError(f"{self.what} stopped answering: {self._scrub(str(exc))}") from None
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = self._scrub(raw.decode("utf-8", "replace"))
            raise UpstreamError(
                f"{self.what} answered something that is not JSON: {body!r}",
                hint="check that the URL is the API's base (it usually ends in /v1)",
            ) from None
        if isinstance(document, dict) and "error" in document:
            raise UpstreamError(f"{self.what} answered an error: {self._scrub(_error_message(raw))}")
        choice = _first_choice(document)
        text = _text_of(choice, is_chat=is_chat) if choice is not None else None
        if text is None:
            raise UpstreamError(
                f"{self.what} answered JSON that is not an OpenAI completion: {self._scrub(raw.decode())!r}"
            )
        assert choice is not None
        return _chunk(text, choice.get("finish_reason") or "stop", _usage(document) or Usage(0, 0))

    async def _events(self, response: Response, *, is_chat: bool) -> AsyncIterator[Chunk]:
        """The chunks of a streamed answer, as its events arrive; the finish waits for the usage
        (sent after it), and a stream that ends before it finished is an error."""
        finish: Any = None
        usage: Usage | None = None
        try:
            async for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # comments, event names, blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    document = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamError(
                        f"{self.what} sent an event that is not JSON: {self._scrub(data)!r}"
                    ) from None
                if isinstance(document, dict) and "error" in document:
                    raise UpstreamError(
                        f"{self.what} stopped with an error: {self._scrub(_error_message(data.encode()))}"
                    )
                usage = _usage(document) or usage
                choice = _first_choice(document)
                if choice is None:
                    continue
                text = _text_of(choice, is_chat=is_chat) or ""
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if text:
                    yield _chunk(text)
        except ReadTimedOut:
            raise self._timeout("next part of its answer") from None
        except (BrokenResponse, Http1Error) as exc:
            raise UpstreamError(
                f"{self.what} stopped mid-answer: {self._scrub(str(exc))}",
                hint="the upstream closed the stream before it finished; its log may say why",
            ) from None
        if finish is None:
            raise UpstreamError(
                f"{self.what} stopped mid-answer: the stream ended before a finish_reason",
                hint="the upstream closed the stream before it finished; its log may say why",
            )
        yield _chunk("", finish, usage)


class _Chunks:
    """An answer's chunks that, when closed (the client left, or the answer was sent), closes the
    upstream response too, even when nothing was read from it yet."""

    def __init__(self, chunks: AsyncIterator[Chunk], response: Response) -> None:
        self._chunks = chunks
        self._response = response

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> Chunk:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        try:
            await self._chunks.aclose()  # type: ignore[attr-defined]
        finally:
            await self._response.aclose()


async def _one(chunk: Chunk) -> AsyncIterator[Chunk]:
    yield chunk


def _first_choice(document: Any) -> dict[str, Any] | None:
    choices = document.get("choices") if isinstance(document, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


def _text_of(choice: Mapping[str, Any], *, is_chat: bool) -> str | None:
    """A choice's text: chat's ``message``/``delta`` content, or a completion's ``text``."""
    if is_chat:
        part = choice.get("message", choice.get("delta"))
        if not isinstance(part, dict):
            return None
        content = part.get("content")
        return content if isinstance(content, str) else ""  # null content: a tool call, no text
    text = choice.get("text")
    return text if isinstance(text, str) else None


def _error_message(raw: bytes) -> str:
    """The message of an OpenAI error body (``{"error": {"message": ...}}``), or the body itself."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace").strip() or "(an empty body)"
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        detail = document.get("detail")
        return f"{error}: {detail}" if isinstance(detail, str) else error
    return raw.decode("utf-8", "replace")


def _hint_for(status: int) -> str:
    if status in (401, 403):
        return "check the API key in the variable upstreams.endpoints.*.api_key_env names"
    if status == 404:
        return "check the URL (the API's base, usually ending in /v1) and the model name"
    return "the upstream's own log says why"
