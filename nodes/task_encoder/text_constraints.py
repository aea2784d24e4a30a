"""Read the constraints a user states in words: "under 50 ms", "on a Raspberry Pi", "30k images".

``read_constraints`` returns every value it found, each with the field it is for (the dotted path of
an ``EncodedTask`` field), the value in that field's units and the words it came from, so that the
encoder can say where each value came from and compare it with the structured fields. It decides
nothing: which value is used, and what a contradiction is, is the encoder's business.

The patterns are deliberately narrow. A number is only read with a unit or a word that says what it
bounds ("under 50 ms", "latency of 0.2 s", "at least 90% accuracy"), so that "within 30 days" (a
prediction window) or "the next 24 hours" (a forecast horizon) are not taken for limits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from sustainml.carbon.intensity import find_region
from sustainml.limits import MAX_NUMBER_DIGITS

from .knowledge import Knowledge

__all__ = ["Stated", "read_constraints", "region_code"]


@dataclass(frozen=True)
class Stated:
    """A value the text states for one field, and the words it was read from.

    ``field`` is the dotted ``EncodedTask`` path ("constraints.max_latency_ms", "train_region").
    ``value`` is in the field's units (ms, g, MiB, days, requests per day) or a name (region code, deploy
    target). For ``constraints.quality_target``, ``metric_words`` is how the text names the metric and
    ``percent`` whether the number came with a percent sign. ``start``/``end`` locate ``words`` in the text.
    """

    field: str
    value: float | str
    words: str
    start: int
    end: int
    metric_words: str = ""
    percent: bool = False
    serving: bool = False  # a region named for serving ("served in France"), not training


def read_constraints(text: str, knowledge: Knowledge) -> list[Stated]:
    """Every constraint value stated in ``text``, in the order of the text; at most one per field,
    the first, except regions (a training and a serving one may both be named).

    A run of more than ``MAX_NUMBER_DIGITS`` digits is no constraint anyone states: it is read as
    "#" characters (the positions in the text stay the same), so that no pattern spends time
    quadratic in its length."""
    text = _LONG_NUMBER.sub(lambda m: "#" * len(m.group(0)), text)
    found: list[Stated] = []
    for reader in (_latency, _train_hours, _co2, _usage, _samples, _epochs, _quality, _regions):
        found.extend(reader(text, knowledge))
    found.extend(_deploy_target(text, knowledge))
    first: dict[str, Stated] = {}
    regions: list[Stated] = []
    for s in sorted(found, key=lambda s: s.start):
        if s.field == "train_region":
            regions.append(s)
        else:
            first.setdefault(s.field, s)
    return sorted([*first.values(), *regions], key=lambda s: s.start)


# ---------------------------------------------------------------- numbers and units

_LONG_NUMBER = re.compile(r"[\d.,]{%d,}" % (MAX_NUMBER_DIGITS + 1))
_NUMBER = r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_COUNT = _NUMBER + r"\s*(?P<mult>k|thousand|m|mio|mln|million|millions|bn|billion)?\b"
_MULTIPLIERS = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mio": 1e6, "mln": 1e6, "million": 1e6,
                "millions": 1e6, "bn": 1e9, "billion": 1e9}
_ABOUT = r"(?:~|about\s+|around\s+|approx(?:\.|imately)?\s+|roughly\s+)?"

_LATENCY_UNITS_MS = {"ms": 1.0, "msec": 1.0, "millisecond": 1.0, "milliseconds": 1.0, "millis": 1.0,
                     "s": 1e3, "sec": 1e3, "secs": 1e3, "second": 1e3, "seconds": 1e3,
                     "µs": 1e-3, "us": 1e-3, "microsecond": 1e-3, "microseconds": 1e-3}
_LATENCY_UNIT = r"(?P<unit>ms|msec|milliseconds?|millis|µs|us|microseconds?|secs?|seconds?|s)\b"
_UPPER_BOUND = (r"(?:under|below|within|less\s+than|lower\s+than|at\s+most|max(?:imum)?(?:\s+of)?|"
                r"no\s+more\s+than|not\s+more\s+than|faster\s+than|up\s+to|<=?|≤)")
_LATENCY_WORDS = r"(?:latency|response\s+time|inference\s+time|prediction\s+time|per[-\s]request\s+time)"

_HOURS_UNITS = {"h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0, "min": 1 / 60, "mins": 1 / 60,
                "minute": 1 / 60, "minutes": 1 / 60, "day": 24.0, "days": 24.0}
_HOURS_UNIT = r"(?P<unit>hours?|hrs?|h|minutes?|mins?|days?)\b"

_CO2_UNITS_G = {"g": 1.0, "gram": 1.0, "grams": 1.0, "kg": 1e3, "kgs": 1e3, "kilogram": 1e3,
                "kilograms": 1e3, "kilo": 1e3, "kilos": 1e3, "t": 1e6, "tonne": 1e6, "tonnes": 1e6,
                "ton": 1e6, "tons": 1e6}
_CO2_UNIT = r"(?P<unit>kgs?|kilo(?:gram)?s?|g|grams?|t|tonnes?|tons?)"
_CO2 = r"(?:co2|co₂|carbon(?:\s+dioxide)?)(?:[-\s]?(?:e|eq|equivalents?))?\b"

_PERIOD_DAYS = {"second": 1 / 86_400, "sec": 1 / 86_400, "s": 1 / 86_400, "minute": 1 / 1_440, "min": 1 / 1_440,
                "hour": 1 / 24, "h": 1 / 24, "hr": 1 / 24, "day": 1.0, "d": 1.0, "week": 7.0, "month": 30.0,
                "year": 365.0}
_REQUESTS = (r"(?:requests?|reqs?|queries|query|predictions?|inferences?|calls?|api\s+calls|hits|"
             r"forecasts?|classifications?|images?|photos?|emails?|messages?|documents?)")
_RATE = (_COUNT + r"\s+" + _REQUESTS + r"\s*(?:a|an|per|/|each|every)\s*"
         r"(?P<period>second|sec|s|minute|min|hour|hr|h|day|d|week|month|year)\b")
_HORIZON = (r"\b(?:for|over|during)\s+(?:(?P<one>a|an|one)|(?P<num>\d+(?:\.\d+)?))\s+"
            r"(?P<period>years?|months?|weeks?|days?)\b")

_SAMPLE_NOUNS = (r"(?:images?|photos?|photographs?|pictures?|pics|scans?|frames?|patches|patch|tiles?|x-rays?|"
                 r"slides?|videos?|clips?|samples?|examples?|rows?|records?|entries|entry|lines|documents?|"
                 r"docs|texts?|emails?|messages?|reviews?|tweets?|sentences?|articles?|tickets?|"
                 r"transactions?|customers?|patients?|applications?|descriptions?|observations?|"
                 r"instances?|data\s+points?|datapoints?|readings?|measurements?|files?|utterances?|"
                 r"comments?|posts?|claims?|loans?|invoices?|contracts?|reports?|notes?)")
_SAMPLES = (r"(?<![\w.,])" + _ABOUT + _COUNT
            + r"\s+(?:(?!(?:ms|s|secs?|seconds?|per|a|an|each|every|of)\b)[a-z][\w-]*\s+){0,2}?"
            + _SAMPLE_NOUNS + r"\b")

_QUALITY_BOUND = (r"(?:of\s+at\s+least|at\s+least|of|above|over|greater\s+than|more\s+than|higher\s+than|"
                  r"better\s+than|below|under|less\s+than|lower\s+than|at\s+most|no\s+more\s+than|"
                  r"no\s+worse\s+than|exceeding|around|about|>=|≥|>|<=|≤|<|=|:)")


def _number(match: re.Match[str]) -> float:
    value = float(match["num"].replace(",", ""))
    mult = match.groupdict().get("mult")
    return value * _MULTIPLIERS[mult.lower()] if mult else value


def _stated(field: str, value: float | str, match: re.Match[str], **extra: object) -> Stated:
    return Stated(field=field, value=value, words=match.group(0).strip(), start=match.start(),
                  end=match.end(), **extra)  # type: ignore[arg-type]


def _search(pattern: str, text: str) -> Iterator[re.Match[str]]:
    return re.finditer(pattern, text, flags=re.IGNORECASE)


# ---------------------------------------------------------------- the readers


def _latency(text: str, knowledge: Knowledge) -> Iterator[Stated]:
    """"under 50 ms", "within 0.2 s", "latency below 100ms", "50 ms max latency", "respond in 20 ms"."""
    patterns = (
        rf"\b{_LATENCY_WORDS}(?:\s+[a-z]+){{0,3}}?\s*(?:of|is|=|:|{_UPPER_BOUND})?\s*{_ABOUT}{_NUMBER}\s*"
        rf"{_LATENCY_UNIT}",
        rf"(?:\b|(?<=[<≤])){_UPPER_BOUND}\s*{_ABOUT}{_NUMBER}\s*{_LATENCY_UNIT}",
        rf"\b{_NUMBER}\s*{_LATENCY_UNIT}\s*(?:max(?:imum)?\s+)?(?:{_LATENCY_WORDS}|per\s+(?:request|image|"
        rf"prediction|inference|query|sample|call))",
        rf"\b(?:respond|answer|reply|run)s?\s+in\s+{_NUMBER}\s*{_LATENCY_UNIT}",
    )
    yield from _scaled(patterns, text, "constraints.max_latency_ms", _LATENCY_UNITS_MS)


def _train_hours(text: str, knowledge: Knowledge) -> Iterator[Stated]:
    """"training must finish within 4 hours", "train in under 2 h", "10 GPU-hours of training"."""
    patterns = (
        rf"\btrain(?:ing|ed)?\b(?:\s+[a-z-]+){{0,4}}?\s+(?:in|{_UPPER_BOUND})\s*{_ABOUT}{_NUMBER}\s*"
        rf"{_HOURS_UNIT}",
        rf"\b{_NUMBER}\s*(?:gpu[-\s]?)?{_HOURS_UNIT}\s+(?:of\s+)?(?:training|to\s+train)\b",
        rf"\btraining\s+(?:time\s+)?budget\s+(?:of|is|:)?\s*{_NUMBER}\s*(?:gpu[-\s]?)?{_HOURS_UNIT}",
    )
    yield from _scaled(patterns, text, "constraints.max_train_hours", _HOURS_UNITS)


def _scaled(patterns: tuple[str, ...], text: str, field: str, units: dict[str, float]) -> Iterator[Stated]:
    """Every match of ``patterns`` as ``field``: its number times the factor of its ``unit`` group."""
    for pattern in patterns:
        for m in _search(pattern, text):
            yield _stated(field, _number(m) * units[m["unit"].lower()], m)


def _co2(text: str, knowledge: Knowledge) -> Iterator[Stated]:
    """"a training budget of 5 kg CO2", "emit less than 200 g CO2e", "CO2 budget: 1 t"; not per request."""
    patterns = (
        rf"(?<![\w.,]){_NUMBER}\s*{_CO2_UNIT}\s*(?:of\s+)?{_CO2}",
        rf"\b{_CO2}\s+(?:emissions?\s+)?(?:budget\s+)?(?:of|is|:|{_UPPER_BOUND})?\s*{_NUMBER}\s*{_CO2_UNIT}\b",
    )
    for pattern in patterns:
        for m in _search(pattern, text):
            if re.match(r"\s*(?:per|/|a|each)\s+(?:request|inference|prediction|query|call)", text[m.end():]):
                continue  # a per-request figure is not a training budget
            yield _stated("constraints.max_train_co2_g", _number(m) * _CO2_UNITS_G[m["unit"].lower()], m)


def _usage(text: str, knowledge: Knowledge) -> Iterator[Stated]:
    """"1000 requests a day for a year" → requests_per_day and horizon_days; a horizon only with a rate."""
    rates = list(_search(_RATE, text))
    for m in rates:
        yield _stated("usage.requests_per_day", _number(m) / _PERIOD_DAYS[m["period"].lower()], m)
    if not rates:
        return
    for m in _search(_HORIZON, text):
        if m.start() < rates[0].start():
            continue
        count = 1.0 if m["one"] else float(m["num"])
        yield _stated("usage.horizon_days", count * _PERIOD_DAYS[m["period"].lower().rstrip("s")], m)


def _samples(text: str, knowledge: Knowledge) -> Iterator[Stated]:
    """"30k images", "2 million rows", "a spreadsheet of 50,000 past applications"."""
    for m in _search(_SAMPLES, text):
        value = _number(m)
        if value >= 1 and value == int(value):
            yield _stated("dataset.num_samples", value, m)


def _epochs(text: str, knowledge: Knowledge) -> Iterator[Stated]:
    for m in _search(rf"\b{_NUMBER}\s+epochs?\b", text):
        value = _number(m)
        if value >= 1 and value == int(value):
            yield _stated("epochs", value, m)


def _quality(text: str, knowledge: Knowledge) -> Iterator[Stated]:
    """"at least 90% accuracy", "accuracy of 0.95", "95% accurate", "mAP of 0.5", "RMSE below 1500"."""
    phrases = sorted({p for m in knowledge.metrics.values() for p in m.phrases}, key=len, reverse=True)
    if not phrases:
        return
    metric = r"(?P<metric>" + "|".join(re.escape(p).replace(r"\ ", r"[\s-]") for p in phrases) + r")"
    percent = r"\s*(?P<pct>%|\s+percent\b|\s+per\s+cent\b)?"
    patterns = (
        rf"(?<![\w.,]){_NUMBER}{percent}\s+(?:top[-\s]?1\s+)?{metric}\b",
        rf"\b{metric}\b(?:\s+[a-z-]+){{0,4}}?\s*{_QUALITY_BOUND}\s*{_ABOUT}{_NUMBER}{percent}",
    )
    for pattern in patterns:
        for m in _search(pattern, text):
            if not m["pct"] and re.match(r"\s*(?:ms|s|sec|seconds?|hours?|days?|k\b|m\b)", text[m.end():]):
                continue  # "accuracy within 50 ms" bounds something else
            yield _stated("constraints.quality_target", _number(m), m, metric_words=m["metric"],
                          percent=bool(m["pct"]))


_CLOUD_REGION = (
    r"\b(?:(?P<provider>aws|gcp|azure)\s*:\s*)?(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d|[a-z]+-[a-z]+\d)\b"
)
_AZURE_REGION = r"\bazure\s*(?::|\s)\s*(?P<region>[a-z]+(?:\s[a-z]+)?)\b"
_PLACE = (r"\b(?:[Ii]n|[Ff]rom|[Aa]t|[Tt]o)\s+(?:the\s+)?"
          r"(?P<place>[A-Z][\w'.-]+(?:\s+(?:of\s+|and\s+)?[A-Z][\w'.-]+){0,3})")
_SERVING = re.compile(r"\b(?:serv(?:e|ed|ing)|inference|deploy(?:ed|ing)?|users?)\b", re.IGNORECASE)
_TRAINING = re.compile(r"\btrain(?:ed|ing)?\b", re.IGNORECASE)


def _regions(text: str, knowledge: Knowledge) -> Iterator[Stated]:
    """Cloud regions ("eu-west-1", "gcp:europe-west4") and countries after a preposition ("in Germany")."""
    for m in _search(_CLOUD_REGION, text):
        provider = (m["provider"] or "").lower()
        region = m["region"].lower()
        forms = [f"{provider}:{region}"] if provider else ([f"aws:{region}"] if region.count("-") == 2 else [region])
        for form in forms:
            code = region_code(form)
            if code:
                yield _stated("train_region", code, m, serving=_near_serving(text, m.start()))
                break
    for m in _search(_AZURE_REGION, text):
        code = region_code(f"azure:{m['region']}") or region_code(f"azure:{m['region'].split()[0]}")
        if code:
            yield _stated("train_region", code, m, serving=_near_serving(text, m.start()))
    for m in re.finditer(_PLACE, text):  # case-sensitive: a place name is capitalised
        words = m["place"].split()
        for n in range(len(words), 0, -1):
            name = " ".join(words[:n]).rstrip(".,;:'")
            if len(name) < 4:  # "IT", "USA": short codes are too often ordinary words or acronyms
                continue
            code = region_code(name)
            if code:
                yield _stated("train_region", code, m, serving=_near_serving(text, m.start()))
                break


def region_code(text: str) -> str:
    """The canonical code of the region ``text`` names ("Germany" -> "DEU"), "" when it names none."""
    found = find_region(text)
    return found.code if found is not None else ""


def _near_serving(text: str, start: int) -> bool:
    """Whether the three words before a region, in its clause, say it is where the model is served."""
    clause = re.split(r"[,;.:!?]", text[max(0, start - 40) : start])[-1]
    before = " ".join(clause.split()[-3:])
    return bool(_SERVING.search(before)) and not _TRAINING.search(before)


def _deploy_target(text: str, knowledge: Knowledge) -> Iterator[Stated]:
    """"on a Raspberry Pi", "running on a phone", "deploy to an ESP32"; not "taken on their phones"."""
    for target in knowledge.deploy_targets.values():
        names = "|".join(re.escape(p).replace(r"\ ", r"[\s-]?") for p in sorted(target.phrases, key=len,
                                                                                    reverse=True))
        pattern = (rf"\b(?:on|onto|to|for|in|into)\s+(?:(?:a|an|the|our|my|each|every|any)\s+)?"
                   rf"(?!(?:their|his|her|your)\b)(?:[a-z0-9-]+\s+)?(?:{names})(?:e?s)?\b"
                   rf"|\b(?:{names})\s+(?:deployment|device|board|target|app|inference)\b")
        for m in _search(pattern, text):
            yield _stated("constraints.deploy_target", target.name, m)
