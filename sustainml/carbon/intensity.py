"""Grid carbon intensity of a region, read from the data codecarbon ships inside its package.

Why codecarbon's data: it is the figure set most ML trackers use, it is installed with the project, and
it needs no network. Countries come from ``data/private_infra/global_energy_mix.json`` (Our World in
Data / Ember, CC BY 4.0, one year per country); Google Cloud regions from ``data/cloud/impact.csv``
(Google's published grid intensity per region). Nothing is copied: both are read through codecarbon's
``DataSource`` on first use and kept for the life of the process.

Accepted region forms (case-insensitive), see ``ACCEPTED_FORMS``:

- ISO 3166 alpha-3 country code: ``"DEU"``;
- ISO 3166 alpha-2 country code: ``"DE"`` (mapped to alpha-3 with pycountry, which codecarbon itself
  depends on and uses for the same purpose; every country in the data has exactly one alpha-2 code);
- country name: ``"Germany"``, also ISO names such as ``"United States of America"``;
- Google Cloud region: ``"gcp:europe-west1"`` or the bare ``"europe-west1"``;
- AWS or Azure region: ``"aws:eu-central-1"``, ``"azure:westeurope"``. The data has no figure per AWS
  or Azure region, so these are mapped to the country they are in (``CLOUD_REGION_COUNTRIES``) and the
  source text says so.
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from sustainml.exceptions import InvalidProblem, UnknownRegion

__all__ = [
    "ACCEPTED_FORMS",
    "CLOUD_REGION_COUNTRIES",
    "COUNTRY_SOURCE",
    "GCP_SOURCE",
    "RegionIntensity",
    "all_regions",
    "find_region",
    "resolve_region",
]

COUNTRY_SOURCE = "codecarbon bundled data (Our World in Data / Ember, CC BY 4.0)"
GCP_SOURCE = (
    "codecarbon bundled data (Google Cloud region carbon, cloud.google.com/sustainability/region-carbon)"
)

ACCEPTED_FORMS = (
    "an ISO 3166 alpha-3 country code ('DEU'), an alpha-2 code ('DE'), a country name ('Germany'), "
    "'gcp:REGION' or a bare Google Cloud region ('europe-west1'), 'aws:REGION' ('aws:eu-central-1') "
    "or 'azure:REGION' ('azure:westeurope')"
)

#: AWS and Azure regions, mapped to the ISO 3166 alpha-3 code of the country they are in, from the
#: providers' public region lists. The country's average grid intensity stands in for the region's,
#: which over-states it where a provider buys low-carbon power locally.
CLOUD_REGION_COUNTRIES: dict[str, dict[str, str]] = {
    "aws": {
        "us-east-1": "USA", "us-east-2": "USA", "us-west-1": "USA", "us-west-2": "USA",
        "ca-central-1": "CAN", "ca-west-1": "CAN", "sa-east-1": "BRA", "mx-central-1": "MEX",
        "eu-central-1": "DEU", "eu-central-2": "CHE", "eu-west-1": "IRL", "eu-west-2": "GBR",
        "eu-west-3": "FRA", "eu-north-1": "SWE", "eu-south-1": "ITA", "eu-south-2": "ESP",
        "me-south-1": "BHR", "me-central-1": "ARE", "il-central-1": "ISR", "af-south-1": "ZAF",
        "ap-east-1": "HKG", "ap-south-1": "IND", "ap-south-2": "IND", "ap-northeast-1": "JPN",
        "ap-northeast-2": "KOR", "ap-northeast-3": "JPN", "ap-southeast-1": "SGP",
        "ap-southeast-2": "AUS", "ap-southeast-3": "IDN", "ap-southeast-4": "AUS",
        "ap-southeast-5": "MYS", "ap-southeast-7": "THA",
    },
    "azure": {
        "eastus": "USA", "eastus2": "USA", "centralus": "USA", "northcentralus": "USA",
        "southcentralus": "USA", "westcentralus": "USA", "westus": "USA", "westus2": "USA",
        "westus3": "USA", "canadacentral": "CAN", "canadaeast": "CAN", "brazilsouth": "BRA",
        "mexicocentral": "MEX", "westeurope": "NLD", "northeurope": "IRL", "uksouth": "GBR",
        "ukwest": "GBR", "francecentral": "FRA", "germanywestcentral": "DEU", "italynorth": "ITA",
        "norwayeast": "NOR", "polandcentral": "POL", "spaincentral": "ESP", "swedencentral": "SWE",
        "switzerlandnorth": "CHE", "uaenorth": "ARE", "qatarcentral": "QAT", "israelcentral": "ISR",
        "southafricanorth": "ZAF", "centralindia": "IND", "southindia": "IND", "westindia": "IND",
        "eastasia": "HKG", "southeastasia": "SGP", "japaneast": "JPN", "japanwest": "JPN",
        "koreacentral": "KOR", "koreasouth": "KOR", "australiaeast": "AUS",
        "australiasoutheast": "AUS", "australiacentral": "AUS",
    },
}

_PROVIDER_NAMES = {"gcp": "Google Cloud", "aws": "AWS", "azure": "Azure"}

# codecarbon 3.3.2's impact.csv spells Google's Doha region "me-cenrtal1"; we publish the real name.
_GCP_REGION_NAME_FIXES = {"me-cenrtal1": "me-central1"}
# ... and files Hong Kong's asia-east2 under China (its city column is right): Hong Kong has its own grid.
_GCP_COUNTRY_FIXES = {"asia-east2": "HKG"}

_MAX_CLOSE_MATCHES = 5


@dataclass(frozen=True)
class RegionIntensity:
    """A region resolved to the grid carbon intensity the footprints are computed with.

    ``code`` is the canonical spelling ("DEU", "gcp:europe-west1", "aws:eu-central-1"), so two
    spellings of one region compare equal by code. Units: g CO2e per kWh drawn from the grid.
    """

    code: str
    name: str
    intensity_g_per_kwh: float
    source: str
    year: int | None = None
    country: str = ""  # ISO 3166 alpha-3 of the country it lies in ("" = not known)


@dataclass(frozen=True)
class _RegionTable:
    """Every region the data knows, indexed by the normalised forms a user may type."""

    countries: dict[str, RegionIntensity]  # by ISO3
    country_aliases: dict[str, str]  # normalised name or ISO2 -> ISO3
    gcp: dict[str, RegionIntensity]  # by bare GCP region name
    suggestions: tuple[str, ...]  # display forms offered as close matches


def resolve_region(region: str) -> RegionIntensity:
    """The grid intensity of ``region``, in any of the forms listed in ``ACCEPTED_FORMS``.

    Raises ``InvalidProblem`` when ``region`` is empty and ``UnknownRegion`` (with up to five close
    matches) when the data has no such region.
    """
    text = region.strip()
    if not text:
        raise InvalidProblem(f"a region is required: give {ACCEPTED_FORMS}")
    found = find_region(text)
    if found is not None:
        return found
    table = _region_table()
    provider, colon, _ = text.partition(":")
    provider = provider.strip().lower()
    if not colon:
        raise _unknown(text, table.suggestions)
    if provider == "gcp":
        raise _unknown(text, tuple(f"gcp:{r}" for r in table.gcp))
    if provider in CLOUD_REGION_COUNTRIES:
        raise _unknown(text, tuple(f"{provider}:{r}" for r in CLOUD_REGION_COUNTRIES[provider]))
    raise UnknownRegion(
        f"unknown cloud provider {provider!r} in region {text!r}: use 'gcp:', 'aws:' or 'azure:'; "
        f"accepted forms: {ACCEPTED_FORMS}"
    )


def find_region(region: str) -> RegionIntensity | None:
    """``region`` resolved like ``resolve_region``, or None: for callers that probe words of free
    text, where a miss is normal and the close-match search of an error message would be wasted
    (it costs about a thousand times a hit)."""
    text = region.strip()
    table = _region_table()
    provider, colon, rest = text.partition(":")
    if colon:
        return _find_cloud(provider.strip().lower(), rest.strip().lower(), table)
    key = _normalise(text)
    if len(key) == 3 and key.upper() in table.countries:
        return table.countries[key.upper()]
    if key in table.country_aliases:
        return table.countries[table.country_aliases[key]]
    return table.gcp.get(key)


def all_regions() -> list[RegionIntensity]:
    """Every region the data knows: countries, Google Cloud regions, and the AWS and Azure regions
    (each at its country's figure), in that order."""
    table = _region_table()
    cloud = [
        region
        for provider in ("aws", "azure")
        for name in CLOUD_REGION_COUNTRIES[provider]
        if (region := _find_cloud(provider, name, table)) is not None
    ]
    return [*table.countries.values(), *table.gcp.values(), *cloud]


def _find_cloud(provider: str, name: str, table: _RegionTable) -> RegionIntensity | None:
    if provider == "gcp":
        return table.gcp.get(name)
    regions = CLOUD_REGION_COUNTRIES.get(provider)
    if regions is None:
        return None
    if provider == "azure":  # Azure's display names ("West Europe") drop to the API name
        name = name.replace(" ", "").replace("-", "")
    if name not in regions:
        return None
    country = table.countries[regions[name]]
    label = _PROVIDER_NAMES[provider]
    return RegionIntensity(
        code=f"{provider}:{name}",
        name=f"{label} {name} ({country.name})",
        intensity_g_per_kwh=country.intensity_g_per_kwh,
        source=f"{country.source}; {label} region mapped to its country ({country.code})",
        year=country.year,
        country=country.code,
    )


def _unknown(text: str, candidates: tuple[str, ...]) -> UnknownRegion:
    by_key = {_normalise(c): c for c in candidates}
    close = difflib.get_close_matches(_normalise(text), list(by_key), n=_MAX_CLOSE_MATCHES, cutoff=0.6)
    hint = f"close matches: {', '.join(repr(by_key[c]) for c in close)}; " if close else ""
    return UnknownRegion(
        f"unknown region {text!r}: not in the carbon-intensity data; {hint}accepted forms: {ACCEPTED_FORMS}"
    )


def _normalise(text: str) -> str:
    """Case- and accent-insensitive form, so "côte d'ivoire" finds "Cote d'Ivoire"."""
    decomposed = unicodedata.normalize("NFKD", text.strip())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


@lru_cache(maxsize=1)
def _region_table() -> _RegionTable:
    from codecarbon.input import DataSource  # deferred: only the carbon tracker pays for the import

    data = DataSource()
    countries: dict[str, RegionIntensity] = {}
    for iso3, row in data.get_global_energy_mix_data().items():
        year = row.get("year")
        countries[iso3.upper()] = RegionIntensity(
            code=iso3.upper(),
            name=str(row["country_name"]),
            intensity_g_per_kwh=float(row["carbon_intensity"]),
            source=COUNTRY_SOURCE,
            year=int(year) if year is not None else None,
            country=iso3.upper(),
        )

    aliases: dict[str, str] = {_normalise(c.name): code for code, c in countries.items()}
    aliases.update(_iso_aliases(countries, taken=set(aliases)))

    gcp: dict[str, RegionIntensity] = {}
    cloud = data.get_cloud_emissions_data()
    for row in cloud[cloud["provider"] == "gcp"].to_dict("records"):
        name = _GCP_REGION_NAME_FIXES.get(str(row["region"]), str(row["region"]))
        gcp[name.lower()] = RegionIntensity(
            code=f"gcp:{name}",
            name=f"Google Cloud {name} ({row['city']}, {row['country_name']})",
            intensity_g_per_kwh=float(row["impact"]),
            source=GCP_SOURCE,
            country=_GCP_COUNTRY_FIXES.get(name, str(row["countryIsoCode"]).upper()),
        )

    suggestions = (
        *countries,
        *(c.name for c in countries.values()),
        *(r.code for r in gcp.values()),
        *(f"{p}:{r}" for p, regions in CLOUD_REGION_COUNTRIES.items() for r in regions),
    )
    return _RegionTable(countries=countries, country_aliases=aliases, gcp=gcp, suggestions=suggestions)


def _iso_aliases(countries: dict[str, RegionIntensity], taken: set[str]) -> dict[str, str]:
    """ISO 3166 alpha-2 codes and names (pycountry) for the countries in the data.

    An alias is kept only when it points at one country of the data and is not already a data name,
    so it can never change what a data name or alpha-3 code means.
    """
    try:
        import pycountry
    except ImportError:  # pragma: no cover - a codecarbon dependency, but optional for us
        return {}
    found: dict[str, set[str]] = {}
    for country in pycountry.countries:
        iso3 = country.alpha_3
        if iso3 not in countries:
            continue
        for attr in ("alpha_2", "name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                found.setdefault(_normalise(value), set()).add(iso3)
    return {
        alias: next(iter(codes))
        for alias, codes in found.items()
        if len(codes) == 1 and alias not in taken and not (len(alias) == 3 and alias.upper() in countries)
    }
