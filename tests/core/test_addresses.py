import ipaddress

import pytest
from django.test import RequestFactory

from webapp.core.addresses import client_address, rate_limit_identity


def _request(peer: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.fixture
def trusted(settings):
    settings.TL_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]


def test_it_ignores_x_forwarded_for_when_no_proxy_is_trusted(settings):
    settings.TL_TRUSTED_PROXIES = []
    assert client_address(_request("198.51.100.4", "203.0.113.1")) == "198.51.100.4"


def test_it_ignores_x_forwarded_for_sent_by_an_untrusted_peer(trusted):
    assert client_address(_request("198.51.100.4", "203.0.113.1")) == "198.51.100.4"


def test_it_takes_the_address_a_trusted_proxy_saw(trusted):
    assert client_address(_request("10.0.0.2", "203.0.113.1")) == "203.0.113.1"


def test_it_skips_a_chain_of_trusted_proxies_but_not_what_the_client_wrote(trusted):
    # client wrote "1.2.3.4"; the first proxy appended the client's real address, the second the first proxy's.
    request = _request("10.0.0.2", "1.2.3.4, 203.0.113.1, 10.0.0.9")
    assert client_address(request) == "203.0.113.1"


def test_it_falls_back_to_the_last_trusted_hop_when_all_are_trusted(trusted):
    assert client_address(_request("10.0.0.2", "10.0.0.3")) == "10.0.0.3"
    assert client_address(_request("10.0.0.2")) == "10.0.0.2"


def test_it_keeps_a_hop_that_is_not_an_address_as_written(trusted):
    assert client_address(_request("10.0.0.2", "unknown")) == "unknown"


def test_it_treats_an_ipv4_mapped_ipv6_peer_as_ipv4(settings):
    settings.TL_TRUSTED_PROXIES = []
    assert client_address(_request("::ffff:198.51.100.4")) == "198.51.100.4"


def test_ipv6_clients_count_per_64_and_ipv4_per_address():
    assert (
        rate_limit_identity("2001:db8:1:2:aaaa::1")
        == rate_limit_identity("2001:db8:1:2:ffff::9")
        == "2001:db8:1:2::/64"
    )
    assert rate_limit_identity("2001:db8:1:3::1") != rate_limit_identity("2001:db8:1:2::1")
    assert rate_limit_identity("198.51.100.4") == "198.51.100.4"
    assert rate_limit_identity("unknown") == "unknown"
