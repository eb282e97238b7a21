"""The upstream allow-list and the addresses no upstream may use unless listed: one attack per class."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.errors import UserError
from lockgate.llm.hosts import (
    address_refusal,
    check_upstream_url,
    parse_allowed_hosts,
    parse_upstream_url,
    resolved_refusal,
)


def _check(url: str, *allowed: str) -> None:
    check_upstream_url(url, parse_allowed_hosts(allowed))


def _refusal(url: str, addresses: list[str], *allowed: str) -> str | None:
    entries = parse_allowed_hosts(allowed)
    return resolved_refusal(check_upstream_url(url, entries), addresses, entries)


def test_a_listed_url_is_read_into_its_parts() -> None:
    target = check_upstream_url("http://127.0.0.1:8001/v1/", parse_allowed_hosts(["127.0.0.1:8001"]))
    assert (target.scheme, target.host, target.port, target.path) == ("http", "127.0.0.1", 8001, "/v1")
    hosted = parse_upstream_url("https://API.Example.com/v1")
    assert (hosted.host, hosted.port, hosted.host_header) == ("api.example.com", 443, "api.example.com")
    assert (hosted.scheme, hosted.path) == ("https", "/v1")


def test_a_host_not_listed_is_refused_naming_the_list() -> None:
    with pytest.raises(UserError, match=r"api\.other\.com:443 is not in upstreams\.allowed_hosts") as caught:
        _check("https://api.other.com/v1", "api.example.com")
    assert "add 'api.other.com:443'" in str(caught.value.hint)
    with pytest.raises(UserError, match=r"not in upstreams\.allowed_hosts"):
        _check("http://127.0.0.1:8002/v1", "127.0.0.1:8001")  # the port is part of the entry


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8001/v1",  # loopback
        "http://[::1]:8001/v1",
        "http://[::ffff:127.0.0.1]:8001/v1",  # IPv4 loopback written as IPv6
        "http://169.254.10.1/v1",  # link-local
        "http://[fe80::1]/v1",
        "http://169.254.169.254/latest/meta-data",  # metadata
        "http://[fd00:ec2::254]/latest",
        "http://10.0.0.5:8000/v1",  # private
        "http://0.0.0.0:8000/v1",
    ],
)
def test_special_addresses_are_refused_even_under_a_listed_name_for_them(url: str) -> None:
    target = parse_upstream_url(url)
    # allowed by host name alone is not enough: the address must be listed as an address
    with pytest.raises(UserError, match="refused"):
        _check(url, "api.example.com")
    why = resolved_refusal(target, [target.host], parse_allowed_hosts(["api.example.com"]))
    assert why is not None


def test_a_special_address_passes_when_the_spec_lists_that_address() -> None:
    _check("http://127.0.0.1:8001/v1", "127.0.0.1:8001")
    _check("http://[::1]:8001/v1", "[::1]:8001")
    _check("http://10.0.0.5:8000/v1", "10.0.0.0/8")
    _check("http://169.254.169.254/latest", "169.254.169.254")  # only when spelled out
    with pytest.raises(UserError, match="cloud metadata address"):
        _check("http://169.254.169.254/latest", "169.254.0.0/16")  # a network does not list it


def test_the_metadata_names_are_refused() -> None:
    with pytest.raises(UserError, match="cloud metadata service"):
        _check("http://metadata.google.internal/computeMetadata/v1", "api.example.com")
    with pytest.raises(UserError, match="cloud metadata service"):
        _check("http://metadata.google.internal./computeMetadata/v1", "10.0.0.0/8")


def test_a_listed_name_that_resolves_to_a_special_address_is_refused() -> None:
    """DNS rebinding: the name is listed, its address is not."""
    why = _refusal("http://localhost:8001/v1", ["127.0.0.1"], "localhost:8001")
    assert why is not None and "'localhost' resolves to 127.0.0.1, a loopback address" in why
    why = _refusal("https://api.example.com/v1", ["93.184.215.14", "169.254.169.254"], "api.example.com")
    assert why is not None and "cloud metadata" in why  # every address counts, not the first
    assert _refusal("https://api.example.com/v1", ["fe80::1%eth0"], "api.example.com") is not None
    assert _refusal("https://api.example.com/v1", [], "api.example.com") is not None
    assert _refusal("https://api.example.com/v1", ["93.184.215.14"], "api.example.com") is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "scheme 'file:'"),
        ("gopher://127.0.0.1:70/", "scheme 'gopher:'"),
        ("ftp://api.example.com/v1", "scheme 'ftp:'"),
        ("http://api.example.com@127.0.0.1:8001/v1", "user information"),
        ("http://127.0.0.1:8001@api.example.com/v1", "user information"),
        ("http://user:secret@api.example.com/v1", "user information"),
        ("http://api.example.com\\@127.0.0.1/v1", "backslash"),
        ("http://api.example.com#@127.0.0.1/v1", "#fragment"),
        ("http://api.example.com/v1?next=http://127.0.0.1", "query"),
        ("http://api.example.com /v1", "space"),
        ("http://%31%32%37.0.0.1/v1", "characters a host name does not"),
        ("http:///v1", "host"),
        ("http://api.example.com:99999/v1", "cannot be read"),
    ],
)
def test_urls_that_could_be_read_two_ways_are_refused(url: str, why: str) -> None:
    with pytest.raises(UserError, match="refused") as caught:
        _check(url, "api.example.com", "127.0.0.1")
    assert why in caught.value.message


def test_a_number_that_spells_an_address_resolves_and_is_checked() -> None:
    # 2130706433 is 127.0.0.1 to the resolver; listed as a name, its address is still loopback
    assert _refusal("http://2130706433:8001/v1", ["127.0.0.1"], "2130706433:8001") is not None


@pytest.mark.parametrize("entry", ["0.0.0.0/0", "::/0", "api.example.com:http", "http://x", "a b", "[::1"])
def test_an_allow_list_entry_that_is_no_host_is_a_user_error(entry: str) -> None:
    with pytest.raises(UserError, match="allowed_hosts entry"):
        parse_allowed_hosts([entry])


_SPECIAL = st.sampled_from(
    ["127.0.0.0/8", "169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]
)


@given(network=_SPECIAL, offset=st.integers(min_value=0, max_value=2**24 - 1))
def test_every_address_of_the_special_ranges_is_refused(network: str, offset: int) -> None:
    net = ipaddress.ip_network(network)
    address = net.network_address + offset % net.num_addresses
    assert address_refusal(address) is not None
    mapped = ipaddress.ip_address(f"::ffff:{address}")
    assert address_refusal(mapped) is not None
