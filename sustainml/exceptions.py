"""Exceptions of the SustainML runtime and nodes. Each says what was wrong and what would be right."""

__all__ = [
    "SustainMLError",
    "TrackingError",
    "LiveIntensityError",
    "InvalidProblem",
    "ConfigError",
    "NoCandidates",
    "UnknownRegion",
    "MeasurementError",
    "TaskCancelled",
    "RequestTimeout",
    "TaskFailed",
    "LaunchError",
]


class SustainMLError(Exception):
    """Base class of every error this project raises on purpose."""


class InvalidProblem(SustainMLError):
    """Raised when a problem description is malformed or its constraints cannot all hold."""


class ConfigError(SustainMLError):
    """Raised when a configuration file, environment variable or option has a wrong value."""


class NoCandidates(SustainMLError):
    """Raised when no catalogue model fits the task and its constraints."""


class UnknownRegion(SustainMLError):
    """Raised when a region is not in the carbon-intensity data; the message lists close matches."""


class MeasurementError(SustainMLError):
    """Raised when a candidate cannot be measured on a device (out of memory, unsupported precision...)."""


class TaskCancelled(SustainMLError):
    """Raised inside a node's callback when its task was cancelled; the runtime stops the work quietly."""


class RequestTimeout(SustainMLError):
    """Raised when a request over DDS, or a task, got no answer within its timeout."""


class TaskFailed(SustainMLError):
    """Raised by the client API when a task ends failed or cancelled; carries the TaskResult."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class LaunchError(SustainMLError):
    """Raised when a launch file is malformed or a node cannot be started."""


class TrackingError(SustainMLError):
    """Raised when the pipeline tracker is used out of order: a stage begun inside another, an epoch
    outside its training."""


class LiveIntensityError(SustainMLError):
    """Raised when a live grid-intensity provider gives no usable reading: network, timeout, HTTP
    status, or an answer of the wrong shape. The message is one line and never contains the API key."""
