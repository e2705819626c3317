"""The watch's thresholds (``params.yaml`` ``monitor:``), checked and with defaults."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields

from bonebase.errors import InputError


@dataclass(frozen=True)
class Policy:
    """When a site's check breaches: see docs/monitoring.md."""

    auc_min: float = 0.65          # a site's AUC below this breaches
    auc_ci_low_min: float = 0.50   # ... and so does the lower bound of its 95% CI below this
    sensitivity_min: float = 0.0   # a site's sensitivity at the locked threshold below this
    sensitivity_ci_low_min: float = 0.0  # ... or its Wilson 95% CI's lower bound (0: rule off)
    min_cases: int = 20            # fewer labelled cases of both classes: no performance verdict
    drift_alpha: float = 0.05      # a feature drifts when its test's p-value is below this
    max_drift_share: float = 0.25  # a site breaches when a larger share of its features drifts
    modalities: tuple[str, ...] = ("CR", "DX")
    batch: int = 32                # radiographs per forward pass
    intermediate_as: str = "benign"
    retrain_on_alert: bool = False
    defer: bool = False            # true: the ingest hook starts the watch in the background
    early: bool = False            # true: score a watched ingest's radiographs while it runs

    @classmethod
    def from_params(cls, section: dict | None, *, source: str = "params.yaml monitor:") -> Policy:
        """A policy from a ``monitor:`` section (None: the defaults); unknown keys are refused."""
        section = dict(section or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise InputError(f"{source}: unknown key(s) {', '.join(unknown)}; known: "
                             f"{', '.join(known)}")
        values = {}
        for name, value in section.items():
            default = getattr(cls, name)
            try:
                if isinstance(default, bool):
                    if not isinstance(value, bool):
                        raise ValueError
                    values[name] = value
                elif isinstance(default, tuple):
                    values[name] = tuple(str(v) for v in value)
                else:
                    values[name] = type(default)(value)
            except (TypeError, ValueError):
                kind = {bool: "true or false", int: "a whole number", float: "a number",
                        tuple: "a list"}[type(default)]
                raise InputError(f"{source} {name}: {value!r} is not {kind} (default "
                                 f"{default!r})") from None
        for name in ("auc_min", "auc_ci_low_min", "sensitivity_min", "sensitivity_ci_low_min",
                     "drift_alpha", "max_drift_share"):
            if not 0.0 <= values.get(name, getattr(cls, name)) <= 1.0:
                raise InputError(f"{source} {name}: must lie between 0 and 1")
        return cls(**values)

    def as_dict(self) -> dict:
        return asdict(self)


#: The watch's params file when none is named (the project's, from its folder).
PARAMS = "params.yaml"


def load(params_path) -> Policy:
    """The policy of a params.yaml (its ``monitor:`` section; defaults when it has none).

    Parsed once per content: a watch loads it in each task, and parsing the whole params.yaml
    cost ~30 ms each time (cProfile of the watch); reading its bytes costs microseconds."""
    from pathlib import Path

    path = Path(params_path)
    if not path.is_file():
        return Policy()
    return _parse(path.read_bytes(), str(path))


@functools.lru_cache(maxsize=8)
def _parse(text: bytes, path: str) -> Policy:
    import yaml

    try:
        params = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc}); fix the file") from None
    return Policy.from_params(params.get("monitor"), source=f"{path} monitor:")


__all__ = ["Policy", "load"]
