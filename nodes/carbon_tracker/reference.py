"""Reference figures the footprint is built on besides grid intensity: data-centre PUE, the embodied
emissions of devices, and equivalents a person grasps. Each comes with its source, shown in results.

Why our own small files (``data/*.yaml``, sources in ``data/README.md``): codecarbon ships grid
intensities but no PUE per provider, no embodied emissions and no equivalents, and no light,
maintained package ships them as data; the figures are few, each traceable to a published report.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from sustainml import msg
from sustainml.carbon.intensity import RegionIntensity
from sustainml.exceptions import ConfigError

__all__ = ["PueFigure", "EmbodiedFigure", "pue_for", "default_pue", "embodied_for", "equivalents_of"]

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class PueFigure:
    """A data centre's power usage effectiveness (facility energy / IT energy) and where it comes from."""

    pue: float
    source: str


@dataclass(frozen=True)
class EmbodiedFigure:
    """The emissions of manufacturing one device and the life it is amortised over.

    Units: kg CO2e, years. For a CPU the figure is the whole machine's (a server or a laptop), since
    the processor cannot be used without it.
    """

    embodied_kg: float
    lifetime_years: float
    source: str
    share: float = 1.0  # of the device this host holds (a VM's cores of a shared server), 0..1

    @property
    def g_per_second(self) -> float:
        """Embodied emissions of this host's share per second of the device's life. Units: g CO2e / s."""
        return self.share * self.embodied_kg * 1000.0 / (self.lifetime_years * 365.25 * 86_400.0)


def _load(name: str) -> dict[str, Any]:
    path = DATA_DIR / name
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read the carbon tracker's reference data {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _cited(entry: dict[str, Any]) -> str:
    parts = [str(entry.get("source", "")).strip(), str(entry.get("url", "")).strip()]
    return ", ".join(p for p in parts if p)


@lru_cache(maxsize=1)
def _pue_table() -> tuple[PueFigure, dict[str, PueFigure], dict[str, PueFigure]]:
    data = _load("pue.yaml")
    default = data["default"]
    providers = {k: PueFigure(float(v["pue"]), _cited(v)) for k, v in (data.get("providers") or {}).items()}
    regions = {k.lower(): PueFigure(float(v["pue"]), _cited(v)) for k, v in (data.get("regions") or {}).items()}
    return PueFigure(float(default["pue"]), _cited(default)), providers, regions


def default_pue() -> PueFigure:
    """The PUE assumed for a data centre nobody gave a figure for."""
    return _pue_table()[0]


def pue_for(region: RegionIntensity) -> PueFigure:
    """The published PUE of the data centres of ``region``: its own figure, its provider's fleet
    figure, or the default (for a country: an on-premises or unknown data centre), said in ``source``."""
    default, providers, regions = _pue_table()
    code = region.code.lower()
    if code in regions:
        figure = regions[code]
        return PueFigure(figure.pue, f"published for {region.code}: {figure.source}")
    provider, colon, _ = code.partition(":")
    if colon and provider in providers:
        figure = providers[provider]
        return PueFigure(figure.pue, f"{provider} fleet average: {figure.source}")
    return PueFigure(default.pue, f"default (data centre not known): {default.source}")


@dataclass(frozen=True)
class _DeviceRule:
    pattern: re.Pattern[str]
    kind: str
    figure: EmbodiedFigure
    machine_cores: int  # 0 = the figure is for one host's device, not shared


@lru_cache(maxsize=1)
def _device_rules() -> tuple[_DeviceRule, ...]:
    rules = []
    for entry in _load("embodied.yaml")["devices"]:
        rules.append(
            _DeviceRule(
                pattern=re.compile(str(entry["match"]), re.IGNORECASE),
                kind=str(entry["kind"]),
                figure=EmbodiedFigure(float(entry["embodied_kg"]), float(entry["lifetime_years"]), _cited(entry)),
                machine_cores=int(entry.get("machine_cores", 0)),
            )
        )
    return tuple(rules)


def embodied_for(device: str, device_name: str = "", cores: int = 0) -> EmbodiedFigure:
    """The embodied figure of a device: ``device`` is its torch id ("cpu", "cuda:0"), ``device_name``
    its model ("NVIDIA H100 80GB HBM3", "AMD EPYC 7B13"; "" = unknown, the kind's fallback applies),
    ``cores`` the logical cores this host sees of it (0 = unknown: the whole machine is charged)."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    for rule in _device_rules():
        if rule.kind == kind and rule.pattern.search(device_name or ""):
            if rule.machine_cores and 0 < cores < rule.machine_cores:
                share = cores / rule.machine_cores
                return dataclasses.replace(
                    rule.figure,
                    share=share,
                    source=f"{share:.3g} of it charged: this host sees {cores} of the machine's assumed "
                    f"{rule.machine_cores} cores; {rule.figure.source}",
                )
            return rule.figure
    raise ConfigError(f"embodied.yaml has no rule for a {kind} device (add a fallback with match '.*')")


@lru_cache(maxsize=1)
def _equivalents() -> tuple[tuple[str, float, str], ...]:
    return tuple(
        (str(e["unit"]), float(e["g_per_unit"]), _cited(e)) for e in _load("equivalents.yaml")["equivalents"]
    )


def equivalents_of(co2_g: float) -> list[msg.Equivalent]:
    """``co2_g`` expressed in each equivalent unit, with its source."""
    return [msg.Equivalent(amount=co2_g / g, unit=unit, source=source) for unit, g, source in _equivalents()]
