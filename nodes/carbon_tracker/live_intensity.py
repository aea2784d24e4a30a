"""Live grid carbon intensity from an online service: an optional layer over the bundled yearly data.

Why: the bundled figures (``sustainml.carbon.intensity``) are yearly averages, while a grid's intensity moves by a
factor of two or more within a day. An operator with an API key can let the carbon tracker use the
latest hourly reading instead. It is never required: no provider configured means the bundled data,
and a provider that fails (no network, a wrong key, a zone the service does not cover) means the
bundled data too, with one log line saying why (``LiveIntensityLookup``).

One abstract class, one class per service, one factory (the shape of Zeus's GPU backends):

- ``LiveIntensityProvider.latest(region) -> LiveIntensity``: raises ``LiveIntensityError`` (a
  ``SustainMLError``) with one readable line for every network, HTTP or response problem; no
  ``urllib`` or ``json`` exception type leaves this module.
- ``ElectricityMapsProvider``: ``GET {base}/v3/carbon-intensity/latest?zone=XX`` with the key in the
  ``auth-token`` header (Electricity Maps API v3). Answer: ``{"zone", "carbonIntensity" (gCO2eq/kWh,
  lifecycle factors by default), "datetime", "updatedAt", "emissionFactorType", "isEstimated", ...}``.
- ``make_live_provider(name, ...)``: ``""`` -> None; ``"electricitymaps"`` -> the provider.

Our regions become Electricity Maps zones thus (``electricitymaps_zone``): the country a region lies
in (``RegionIntensity.country``, which ``intensity`` fills for countries and cloud regions alike)
becomes its alpha-2 code with pycountry (``"DEU"`` -> ``"DE"``). ``zones=`` overrides any of these,
by our region code. Known limit: Electricity Maps splits some countries into several zones (the USA, Canada,
Australia, India, Japan, Italy, the Nordic countries...); where the country code is not a zone the
service answers "unknown zone" and the bundled figure is kept. Pin such regions with ``zones=``
(e.g. ``{"gcp:us-central1": "US-MIDW-MISO"}``).

The key goes to the configured base URL only: redirects are refused (``urllib`` would re-send the
header to the new host), plain ``http://`` is accepted only for a loopback host (a local mirror or a
test), and the key never appears in a message, a log line or ``repr``. Every request has a timeout.

Plugging in WattTime (not implemented): subclass ``LiveIntensityProvider`` in this module and add it to
``_PROVIDERS``. Its ``latest`` would log in with the account's user name and password
(``GET https://api.watttime.org/login``, HTTP basic auth, a bearer token valid about 30 minutes,
kept and renewed by the instance), find the balancing authority of the region
(``/v3/region-from-loc`` takes a latitude and longitude, so it needs a coordinate per region), and read
``/v3/signal-index`` or ``/v3/forecast`` with ``signal_type=co2_moer``. Two differences to state in
its ``source``: WattTime's MOER is a marginal rate, not the average rate the bundled data and
Electricity Maps give, and it comes in lbs CO2/MWh (x 0.4536 for g/kWh; a conversion for
``sustainml.units``). Its error handling should reuse ``_get_json`` so that it, too, raises only
``LiveIntensityError``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, ClassVar

from sustainml.carbon.intensity import RegionIntensity, find_region
from sustainml.config import is_loopback_host
from sustainml.exceptions import ConfigError, LiveIntensityError, SustainMLError

__all__ = [
    "API_KEY_ENV",
    "ElectricityMapsProvider",
    "KNOWN_PROVIDERS",
    "LiveIntensity",
    "LiveIntensityError",
    "LiveIntensityLookup",
    "LiveIntensityProvider",
    "electricitymaps_zone",
    "make_live_provider",
]

_log = logging.getLogger(__name__)

API_KEY_ENV = "ELECTRICITYMAPS_API_KEY"
DEFAULT_TIMEOUT_S = 5.0
#: Units: g CO2e / kWh. Above any real grid (coal plants emit about 1,000): a broken answer, not a reading.
_MAX_PLAUSIBLE_G_PER_KWH = 2_000.0
_MAX_RESPONSE_BYTES = 64 * 1024
_MAX_MESSAGE_CHARS = 160


@dataclass(frozen=True)
class LiveIntensity:
    """One reading of a grid's carbon intensity. Units: g CO2e per kWh drawn from the grid.

    ``source`` names the provider, the zone and the reading's time, for the report; ``datetime`` is
    the reading's time as the provider wrote it (ISO 8601, UTC for Electricity Maps).
    """

    intensity_g_per_kwh: float
    source: str
    datetime: str
    zone: str = ""
    is_estimated: bool = False


class LiveIntensityProvider(ABC):
    """A service that knows a region's grid intensity now. Subclasses raise only ``LiveIntensityError``."""

    #: Display name, e.g. "Electricity Maps".
    name: ClassVar[str] = ""

    @abstractmethod
    def latest(self, region: RegionIntensity) -> LiveIntensity:
        """The latest reading for ``region`` (resolved by ``intensity.resolve_region``)."""


# -------------------------------------------------------------------- our regions -> Electricity Maps zones
def _alpha2(iso3: str, region_code: str) -> str:
    import pycountry  # a codecarbon dependency, as in intensity.py

    country = pycountry.countries.get(alpha_3=iso3.upper())
    if country is None:
        raise LiveIntensityError(f"no Electricity Maps zone for region {region_code!r}: {iso3!r} is not an "
                                 "ISO 3166 country code pycountry knows; pin one with zones=")
    return str(country.alpha_2)


def electricitymaps_zone(region: RegionIntensity | str, zones: Mapping[str, str] | None = None) -> str:
    """The Electricity Maps zone of one of our regions ("DEU", "gcp:europe-west1", "aws:...", "azure:...").

    ``zones`` (our code -> zone) wins over the country mapping. Raises ``LiveIntensityError`` when the
    region maps to no zone, so a lookup falls back to the bundled data like for any other failure.
    """
    found = region if isinstance(region, RegionIntensity) else find_region(region)
    code = found.code if found is not None else str(region).strip()
    if zones and code in zones:
        return zones[code]
    if found is None or not found.country:
        raise LiveIntensityError(f"no Electricity Maps zone for region {code!r}: its country is not known; "
                                 "pin one with zones=")
    return _alpha2(found.country, code)


# -------------------------------------------------------------------- HTTP, errors translated at the edge
class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect with every header, the key included: refuse, so the 3xx is an error."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None



def _check_base_url(base_url: str) -> str:
    """The base URL without a trailing slash, or ConfigError: https, or http to this machine only."""
    text = base_url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(text)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(f"live intensity base URL {base_url!r}: expected https://HOST[/PATH], "
                          "e.g. https://api.electricitymaps.com")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ConfigError(f"live intensity base URL {base_url!r}: plain http would send the API key in clear; "
                          "use https (http is accepted for localhost only)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"live intensity base URL {base_url!r}: no query, fragment or user name expected; "
                          "the key goes in the auth-token header")
    return text


def _server_message(body: bytes, secret: str) -> str:
    """The service's own error text, one line, short, the key blanked if it were ever echoed."""
    text = body[:_MAX_RESPONSE_BYTES].decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        text = str(data.get("message") or data.get("error") or data.get("status") or "")
    text = " ".join(text.split())
    if secret:
        text = text.replace(secret, "***")
    return text[:_MAX_MESSAGE_CHARS]


def _get_json(url: str, headers: Mapping[str, str], *, timeout_s: float, service: str, secret: str,
              status_hints: Mapping[int, str]) -> Any:
    """GET ``url`` and parse its JSON; every failure becomes a one-line ``LiveIntensityError``.

    ``status_hints`` add a service-specific reading of some HTTP statuses (401: the key...).
    """
    host = urllib.parse.urlsplit(url).hostname or ""
    handlers: list[urllib.request.BaseHandler] = [_RefuseRedirects()]
    if is_loopback_host(host):
        handlers.append(urllib.request.ProxyHandler({}))  # a local server is never reached through a proxy
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers=dict(headers), method="GET")
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body = response.read(_MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as e:
        try:
            said = _server_message(e.read(), secret)
        except (OSError, HTTPException):
            said = ""
        finally:
            e.close()
        if 300 <= e.code < 400:
            where = urllib.parse.urlsplit(e.headers.get("Location", "") or "").hostname or "elsewhere"
            raise LiveIntensityError(f"{service} answered HTTP {e.code}, a redirect to {where}: not followed, "
                                     "so the API key stays with the configured base URL") from e
        hint = status_hints.get(e.code) or ("the service is failing; try later" if e.code >= 500 else "")
        detail = "; ".join(part for part in (f"it said: {said}" if said else "", hint) if part)
        raise LiveIntensityError(f"{service} answered HTTP {e.code}" + (f" ({detail})" if detail else "")) from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
            raise LiveIntensityError(f"{service} at {host} gave no answer within {timeout_s:g} s") from e
        raise LiveIntensityError(f"cannot reach {service} at {host}: {e.reason}") from e
    except TimeoutError as e:
        raise LiveIntensityError(f"{service} at {host} gave no answer within {timeout_s:g} s") from e
    except (OSError, HTTPException) as e:
        raise LiveIntensityError(f"connection to {service} at {host} failed: {type(e).__name__} {e}".strip()) from e
    if len(body) > _MAX_RESPONSE_BYTES:
        raise LiveIntensityError(f"{service} answer is over {_MAX_RESPONSE_BYTES // 1024} KiB: not a reading")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        start = " ".join(body[:60].decode("utf-8", "replace").split())
        raise LiveIntensityError(f"{service} answer is not JSON (starts {start!r})") from e


# -------------------------------------------------------------------- Electricity Maps
class ElectricityMapsProvider(LiveIntensityProvider):
    """Electricity Maps' latest hourly carbon intensity of a zone (API v3, key in ``auth-token``)."""

    name: ClassVar[str] = "Electricity Maps"
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.electricitymaps.com"
    PATH: ClassVar[str] = "/v3/carbon-intensity/latest"

    def __init__(self, *, api_key: str, base_url: str = DEFAULT_BASE_URL, timeout_s: float = DEFAULT_TIMEOUT_S,
                 zones: Mapping[str, str] | None = None) -> None:
        if not api_key.strip():
            raise ConfigError(f"Electricity Maps needs an API key: set {API_KEY_ENV}")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ConfigError(f"live intensity timeout_s is {timeout_s!r}, expected seconds > 0, e.g. 5")
        self._api_key = api_key.strip()
        self.base_url = _check_base_url(base_url)
        self.timeout_s = float(timeout_s)
        self.zones = dict(zones or {})

    def __repr__(self) -> str:  # never the key
        return f"ElectricityMapsProvider(base_url={self.base_url!r}, timeout_s={self.timeout_s:g})"

    def zone_for(self, region: RegionIntensity) -> str:
        return electricitymaps_zone(region, self.zones)

    def latest(self, region: RegionIntensity) -> LiveIntensity:
        zone = self.zone_for(region)
        # shouldUseFallbackCallerLookup=false: a zone the service does not know must be an error, not
        # the zone of this machine's IP address (the API's documented default fallback).
        query = urllib.parse.urlencode({"zone": zone, "shouldUseFallbackCallerLookup": "false"})
        data = _get_json(
            f"{self.base_url}{self.PATH}?{query}",
            {"auth-token": self._api_key, "Accept": "application/json", "User-Agent": "sustainml"},
            timeout_s=self.timeout_s, service=self.name, secret=self._api_key,
            status_hints={
                401: f"the API key was refused: check {API_KEY_ENV}",
                403: f"the API key does not cover zone {zone} (a free key covers one zone)",
                404: f"no zone {zone!r} or no data for it; pin a zone for {region.code} with zones=",
                429: "rate limit reached; readings are hourly, so fewer requests suffice",
            },
        )
        return self._reading(data, zone)

    def _reading(self, data: Any, zone: str) -> LiveIntensity:
        if not isinstance(data, dict):
            raise LiveIntensityError(f"{self.name} answer for zone {zone} is not a JSON object")
        answered_zone = str(data.get("zone") or zone)
        if answered_zone.upper() != zone.upper():
            raise LiveIntensityError(f"{self.name} answered for zone {answered_zone!r}, not the {zone!r} asked for")
        value = data.get("carbonIntensity")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LiveIntensityError(f"{self.name} answer for zone {zone} has no number in carbonIntensity "
                                     f"(got {value!r}): no recent data for the zone")
        intensity = float(value)
        if not (math.isfinite(intensity) and 0.0 <= intensity <= _MAX_PLAUSIBLE_G_PER_KWH):
            raise LiveIntensityError(f"{self.name} answer for zone {zone}: carbonIntensity {value!r} g/kWh is "
                                     f"outside 0..{_MAX_PLAUSIBLE_G_PER_KWH:g}")
        when = str(data.get("datetime") or "")
        estimated = bool(data.get("isEstimated"))
        factors = str(data.get("emissionFactorType") or "lifecycle")
        notes = ", ".join(n for n in (factors, "estimated" if estimated else "") if n)
        return LiveIntensity(
            intensity_g_per_kwh=intensity,
            source=f"{self.name} live, zone {zone}, reading of {when or 'unknown time'} ({notes})",
            datetime=when,
            zone=zone,
            is_estimated=estimated,
        )


# -------------------------------------------------------------------- factory
_PROVIDERS: dict[str, Callable[..., LiveIntensityProvider]] = {"electricitymaps": ElectricityMapsProvider}
_ALIASES = {"electricity_maps": "electricitymaps", "electricity-maps": "electricitymaps",
            "electricitymap": "electricitymaps"}
KNOWN_PROVIDERS = tuple(_PROVIDERS)


def make_live_provider(name: str, *, api_key: str | None = None, base_url: str | None = None,
                       timeout_s: float = DEFAULT_TIMEOUT_S,
                       zones: Mapping[str, str] | None = None) -> LiveIntensityProvider | None:
    """The live provider the operator named, or None for ``""`` (the bundled data only).

    Raises ``ConfigError`` for an unknown name (listing the known ones), a missing key (argument, else
    ``$ELECTRICITYMAPS_API_KEY``), a base URL that is not https, or a timeout that is not positive.
    """
    key = name.strip().lower()
    if not key:
        return None
    key = _ALIASES.get(key, key)
    if key not in _PROVIDERS:
        raise ConfigError(f"unknown live intensity provider {name!r}; known: {', '.join(KNOWN_PROVIDERS)} "
                          "(or '' for the bundled data only)")
    secret = (api_key or "").strip() or os.environ.get(API_KEY_ENV, "").strip()
    if not secret:
        raise ConfigError(f"live intensity provider {key!r} needs an API key: set {API_KEY_ENV} (a key from "
                          "portal.electricitymaps.com), or set the provider to '' to use the bundled data only")
    return _PROVIDERS[key](api_key=secret, base_url=base_url or ElectricityMapsProvider.DEFAULT_BASE_URL,
                           timeout_s=timeout_s, zones=zones)


# -------------------------------------------------------------------- the fallback, for the carbon tracker
class LiveIntensityLookup:
    """``CarbonSettings.live`` for the footprints: a region from the data -> the same region at its live
    intensity, or None to keep the data's figure.

    Readings are kept ``cache_s`` (Electricity Maps' readings are hourly, and every footprint of a
    task should see one figure); after a failure the region is not asked again for ``retry_after_s``,
    so a service that is down costs one timeout, not one per task. Each fallback reason is logged once
    (a warning); a repeat of the same reason is logged at debug level. Safe from several threads.
    """

    def __init__(self, provider: LiveIntensityProvider, *, log: logging.Logger | None = None,
                 cache_s: float = 300.0, retry_after_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.provider = provider
        self._log = log or _log
        self._cache_s = cache_s
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._readings: dict[str, tuple[float, LiveIntensity]] = {}
        self._failed_until: dict[str, float] = {}
        self._logged: set[tuple[str, str]] = set()

    def latest_or_none(self, region: RegionIntensity) -> LiveIntensity | None:
        now = self._clock()
        with self._lock:
            kept = self._readings.get(region.code)
            if kept is not None and now - kept[0] < self._cache_s:
                return kept[1]
            if self._failed_until.get(region.code, -math.inf) > now:
                return None
        try:
            reading = self.provider.latest(region)
        except Exception as e:  # noqa: BLE001 - see latest_or_none()
            reason = str(e) if isinstance(e, SustainMLError) else f"{type(e).__name__}: {e}"
            with self._lock:
                self._failed_until[region.code] = self._clock() + self._retry_after_s
                first = (region.code, reason) not in self._logged
                self._logged.add((region.code, reason))
            level = logging.WARNING if first else logging.DEBUG
            self._log.log(level, "live intensity for %s unavailable, using the bundled figure: %s",
                          region.code, reason)
            return None
        with self._lock:
            self._readings[region.code] = (self._clock(), reading)
            self._failed_until.pop(region.code, None)
        return reading

    def __call__(self, region: RegionIntensity) -> RegionIntensity | None:
        reading = self.latest_or_none(region)
        if reading is None:
            return None
        return dataclasses.replace(
            region,
            intensity_g_per_kwh=reading.intensity_g_per_kwh,
            source=reading.source + (f"; {region.code} read as zone {reading.zone}" if ":" in region.code else ""),
            year=_year(reading.datetime),
        )


def _year(when: str) -> int | None:
    try:
        return int(when[:4])
    except ValueError:
        return None
