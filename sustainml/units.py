"""The one place where units are converted. Names carry units: ``energy_j``, ``energy_kwh``..."""

J_PER_KWH = 3.6e6
S_PER_HOUR = 3600.0
MS_PER_S = 1000.0
BYTES_PER_MB = 1024.0 * 1024.0  # mebibyte: what torch and psutil report


def j_to_kwh(energy_j: float) -> float:
    return energy_j / J_PER_KWH


def kwh_to_j(energy_kwh: float) -> float:
    return energy_kwh * J_PER_KWH


def co2_g(energy_kwh: float, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """Grams CO2e of ``energy_kwh`` drawn by the IT equipment in a facility of the given PUE."""
    return energy_kwh * pue * intensity_g_per_kwh


def bytes_to_mb(n_bytes: float) -> float:
    return n_bytes / BYTES_PER_MB
