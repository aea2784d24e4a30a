"""Live grid intensity from Electricity Maps, against a local HTTP server.

The real service (api.electricitymaps.com) cannot be reached from this machine and needs a paid or
registered key, so a ``http.server`` in a thread plays it: it serves the documented answer of
``GET /v3/carbon-intensity/latest?zone=XX`` (``zone``, ``carbonIntensity``, ``datetime``, ``updatedAt``,
``createdAt``, ``emissionFactorType``, ``isEstimated``, ``estimationMethod``) when the ``auth-token``
header holds the right key. Its error bodies are plausible JSON, not copies of the service's: the
client only shows their ``message``. What is checked is what an operator sees: the figure and its
source, one readable line per failure, the key sent to the configured server only, and the bundled
figure kept whenever the live one cannot be had.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sustainml.exceptions import ConfigError, LiveIntensityError
from sustainml.carbon.intensity import RegionIntensity, resolve_region
from sustainml_nodes.carbon_tracker.live_intensity import (API_KEY_ENV, ElectricityMapsProvider, LiveIntensity,
                                                           LiveIntensityLookup,
                                                           LiveIntensityProvider, electricitymaps_zone,
                                                           make_live_provider)

from conftest import FakeClock

KEY = "test-key-0123456789"
READING = {
    "zone": "DE", "carbonIntensity": 302, "datetime": "2024-03-06T19:00:00.000Z",
    "updatedAt": "2024-03-06T18:48:27.926Z", "createdAt": "2024-03-03T19:47:16.265Z",
    "emissionFactorType": "lifecycle", "isEstimated": True, "estimationMethod": "TIME_SLICER_AVERAGE",
}
#: Zones the fake knows, with their intensity (g/kWh).
ZONES = {"DE": 302, "FR": 41, "BE": 150, "NL": 330}


@dataclass
class FakeService:
    """What the fake Electricity Maps saw and how it should answer next."""

    base_url: str = ""
    mode: str = "normal"  # normal, slow, not_json, no_value, other_zone, redirect
    redirect_to: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def last_query(self) -> dict[str, str]:
        path, _ = self.requests[-1]
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))


def serve(service: FakeService) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest's output clean
            pass

        def answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            service.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            url = urllib.parse.urlsplit(self.path)
            zone = dict(urllib.parse.parse_qsl(url.query)).get("zone", "")
            if service.mode == "redirect":
                return self.answer(302, {}, {"Location": service.redirect_to})
            if url.path != "/v3/carbon-intensity/latest":
                return self.answer(404, {"status": "error", "message": f"no route {url.path}"})
            if self.headers.get("auth-token") != KEY:
                return self.answer(401, {"status": "error", "message": "Invalid authentication token"})
            if service.mode == "slow":
                service.release.wait(timeout=10.0)  # until the test is done with it, never longer
                return self.answer(200, {**READING, "zone": zone})
            if service.mode == "not_json":
                return self.answer(200, b"<html>Service Unavailable</html>")
            if zone not in ZONES:
                return self.answer(404, {"status": "error", "message": f"Zone '{zone}' does not exist"})
            if service.mode == "no_value":
                return self.answer(200, {**READING, "zone": zone, "carbonIntensity": None})
            if service.mode == "other_zone":
                return self.answer(200, {**READING, "zone": "FR"})
            return self.answer(200, {**READING, "zone": zone, "carbonIntensity": ZONES[zone]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    service.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    return server


@pytest.fixture
def service() -> Iterator[FakeService]:
    fake = FakeService()
    server = serve(fake)
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()


def provider(service: FakeService, **kwargs: object) -> ElectricityMapsProvider:
    options: dict[str, object] = {"api_key": KEY, "base_url": service.base_url, "timeout_s": 2.0, **kwargs}
    return ElectricityMapsProvider(**options)  # type: ignore[arg-type]


def failure(call: object) -> str:
    """The one-line message of the LiveIntensityError ``call`` raises; it never holds the key."""
    with pytest.raises(LiveIntensityError) as caught:
        call()  # type: ignore[operator]
    text = str(caught.value)
    assert "\n" not in text and KEY not in text, text
    return text


# -------------------------------------------------------------------- readings
def test_latest_reading_with_the_key_in_its_header(service: FakeService) -> None:
    reading = provider(service).latest(resolve_region("DEU"))
    assert reading == LiveIntensity(
        intensity_g_per_kwh=302.0,
        source="Electricity Maps live, zone DE, reading of 2024-03-06T19:00:00.000Z (lifecycle, estimated)",
        datetime="2024-03-06T19:00:00.000Z", zone="DE", is_estimated=True)
    path, headers = service.requests[-1]
    assert path.startswith("/v3/carbon-intensity/latest?")
    assert service.last_query() == {"zone": "DE", "shouldUseFallbackCallerLookup": "false"}
    assert headers["auth-token"] == KEY


@pytest.mark.parametrize(("region", "zone"), [
    ("DEU", "DE"), ("France", "FR"),
    ("aws:eu-central-1", "DE"), ("azure:westeurope", "NL"),
    ("gcp:europe-west1", "BE"),  # St. Ghislain, Belgium, from codecarbon's cloud data
])
def test_our_regions_become_zones(service: FakeService, region: str, zone: str) -> None:
    reading = provider(service).latest(resolve_region(region))
    assert service.last_query()["zone"] == zone
    assert reading.intensity_g_per_kwh == ZONES[zone]


def test_zone_mapping_without_the_network() -> None:
    assert electricitymaps_zone("gcp:asia-east2") == "HK"  # Hong Kong, though codecarbon files it under China
    assert electricitymaps_zone("aws:ap-east-1") == "HK"
    assert electricitymaps_zone("gcp:us-central1", {"gcp:us-central1": "US-MIDW-MISO"}) == "US-MIDW-MISO"
    assert "pin one with zones=" in failure(lambda: electricitymaps_zone("gcp:mars-north1"))


# -------------------------------------------------------------------- failures, one line each
def test_wrong_key(service: FakeService) -> None:
    text = failure(lambda: provider(service, api_key="not-the-key").latest(resolve_region("DEU")))
    assert "HTTP 401" in text and "Invalid authentication token" in text and API_KEY_ENV in text


def test_timeout(service: FakeService) -> None:
    service.mode = "slow"   # holds the request until the test ends, then answers 200 with a reading
    text = failure(lambda: provider(service, timeout_s=0.3).latest(resolve_region("DEU")))
    assert "no answer within 0.3 s" in text   # it gave up, rather than waiting for that reading
    assert len(service.requests) == 1


def test_malformed_json(service: FakeService) -> None:
    service.mode = "not_json"
    assert "answer is not JSON (starts '<html>Service Unavailable</html>')" in failure(
        lambda: provider(service).latest(resolve_region("DEU")))


def test_unknown_zone(service: FakeService) -> None:
    text = failure(lambda: provider(service).latest(resolve_region("USA")))
    assert "HTTP 404" in text and "Zone 'US' does not exist" in text and "zones=" in text


def test_no_value_for_the_zone(service: FakeService) -> None:
    service.mode = "no_value"
    assert "no number in carbonIntensity" in failure(lambda: provider(service).latest(resolve_region("DEU")))


def test_an_answer_for_another_zone_is_refused(service: FakeService) -> None:
    service.mode = "other_zone"
    assert "answered for zone 'FR', not the 'DE'" in failure(lambda: provider(service).latest(resolve_region("DEU")))


def test_nothing_listening() -> None:
    fake = FakeService()
    server = serve(fake)
    base_url = fake.base_url
    server.shutdown()
    server.server_close()
    text = failure(lambda: ElectricityMapsProvider(api_key=KEY, base_url=base_url).latest(resolve_region("DEU")))
    assert text.startswith("cannot reach Electricity Maps at 127.0.0.1")


def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else(service: FakeService) -> None:
    elsewhere = FakeService()
    other = serve(elsewhere)
    try:
        service.mode = "redirect"
        service.redirect_to = f"{elsewhere.base_url}/v3/carbon-intensity/latest?zone=DE"
        text = failure(lambda: provider(service).latest(resolve_region("DEU")))
        assert "HTTP 302" in text and "not followed" in text
        assert elsewhere.requests == []
    finally:
        other.shutdown()
        other.server_close()


def test_the_key_stays_out_of_repr(service: FakeService) -> None:
    assert KEY not in repr(provider(service))


# -------------------------------------------------------------------- configuration
def test_factory(monkeypatch: pytest.MonkeyPatch, service: FakeService) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert make_live_provider("") is None
    with pytest.raises(ConfigError, match=API_KEY_ENV):
        make_live_provider("electricitymaps")
    with pytest.raises(ConfigError, match="known: electricitymaps"):
        make_live_provider("watttime", api_key=KEY)
    monkeypatch.setenv(API_KEY_ENV, KEY)
    live = make_live_provider("ElectricityMaps", base_url=service.base_url)
    assert isinstance(live, ElectricityMapsProvider)
    assert live.latest(resolve_region("FRA")).intensity_g_per_kwh == 41.0
    assert service.requests[-1][1]["auth-token"] == KEY  # the key from the environment


@pytest.mark.parametrize(("base_url", "words"), [
    ("http://api.electricitymaps.com", "in clear"),
    ("ftp://api.electricitymaps.com", "expected https://"),
    ("https://api.electricitymaps.com/?token=x", "no query"),
])
def test_a_base_url_that_would_expose_the_key_is_refused(base_url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        make_live_provider("electricitymaps", api_key=KEY, base_url=base_url)


def test_a_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="timeout_s"):
        make_live_provider("electricitymaps", api_key=KEY, timeout_s=0)


# -------------------------------------------------------------------- the fallback to the bundled data
class CountingProvider(LiveIntensityProvider):
    """A provider that fails (or answers) on demand and counts the calls."""

    name = "counting fake"

    def __init__(self, answer: LiveIntensity | None = None, error: Exception | None = None) -> None:
        self.answer, self.error, self.calls = answer, error, 0

    def latest(self, region: RegionIntensity) -> LiveIntensity:
        self.calls += 1
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer


def test_a_failing_provider_keeps_the_bundled_figure_and_says_why_once(caplog: pytest.LogCaptureFixture) -> None:
    failing = CountingProvider(error=LiveIntensityError("cannot reach Electricity Maps at api: refused"))
    clock = FakeClock(1000.0)
    lookup = LiveIntensityLookup(failing, retry_after_s=60.0, clock=clock)
    germany = resolve_region("DEU")
    with caplog.at_level(logging.DEBUG, logger="sustainml_nodes.carbon_tracker.live_intensity"):
        assert lookup(germany) is None
        assert lookup(germany) is None  # within retry_after_s: not asked again
        clock.now_s += 61.0
        assert lookup(germany) is None  # asked again, same reason: not warned again
    assert failing.calls == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == ("live intensity for DEU unavailable, using the bundled figure: "
                                        "cannot reach Electricity Maps at api: refused")


def test_even_a_plug_in_bug_does_not_fail_the_footprint(caplog: pytest.LogCaptureFixture) -> None:
    broken = CountingProvider(error=KeyError("carbonIntensity"))
    with caplog.at_level(logging.WARNING):
        assert LiveIntensityLookup(broken)(resolve_region("DEU")) is None
    assert "KeyError" in caplog.text


def test_a_live_reading_replaces_the_figure_and_is_kept_a_while(service: FakeService) -> None:
    clock = FakeClock(1000.0)
    lookup = LiveIntensityLookup(provider(service), cache_s=300.0, clock=clock)
    bundled = resolve_region("aws:eu-central-1")
    live = lookup(bundled)
    assert live is not None
    assert (live.code, live.name) == (bundled.code, bundled.name)
    assert live.intensity_g_per_kwh == 302.0 and live.year == 2024
    assert live.source == ("Electricity Maps live, zone DE, reading of 2024-03-06T19:00:00.000Z (lifecycle, "
                           "estimated); aws:eu-central-1 read as zone DE")
    asked = len(service.requests)
    assert lookup(bundled) == live
    assert len(service.requests) == asked  # cached
    clock.now_s += 301.0
    assert lookup(bundled) == live
    assert len(service.requests) == asked + 1
