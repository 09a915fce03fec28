"""Sweep specs: a base run config plus a `[grid]` of dotted field paths and optional `[[variants]]`.

A spec is a TOML file with the tables of a training run config (`[model]`, `[task]`, `[train]`)
and

    [grid]                      # the Cartesian product of these values
    "model.n_layers" = [1, 2]
    "model.gamma" = [0.0, 1.0]
    "train.seed" = [0, 1, 2]

    [[variants]]                # optional: each grid point is run once per variant
    label = "momentum"          # (no overrides: the base config)
    [[variants]]
    label = "smeared_key"
    "model.smeared_key" = true
    "model.shear" = "none"

An optional `[protocol]` table tunes one field per arm without selection bias:

    [protocol]
    search = "train.lr"                          # the field tuned per arm
    values = [1e-4, 3.162e-4, 1e-3, 3.162e-3, 1e-2, 3.162e-2]
    selection_seeds = [100]                      # the "select" stage: every arm at every value
    fresh_seeds = [0, 1, 2, 3, 4]                # the "fresh" stage: each arm at its best value
    criterion = "auc_accuracy"                   # higher is better
    detect_difference = 0.02                     # optional: run only the first n fresh seeds,
    min_fresh_seeds = 5                          # n sized from the selection seeds' spread
    floor = 0.5                                  # optional: no fresh stage unless some
                                                 # selection run ends above this final accuracy

An *arm* is a run's config without the searched field and the seed. Selection seeds and fresh
seeds never overlap, so the numbers reported (fresh seeds) are not the ones that chose the value.

A pruned search (`around` and `neighbours`, together) searches each arm only near the value an
earlier study's select stage chose for its *reference arm*:

    around = "../../results/fair_gamma_star/n1/selection.json"  # that stage's selection.json
    neighbours = 1                                                # ± this many steps of `values`

The reference arm is the arm of that file with the same variant label and the same
`model.gamma` (exactly one must match; e.g. a deeper study's `plain_deeper` arm matches the
earlier `plain_deeper` arm, whatever their depths). The arm searches the entries of `values`
within ± `neighbours` positions of the reference's pick, fewer where the pick is near an end of
`values` (then `selection.select` says the arm's best sits at the study grid's end). A relative
path is read from the spec file's folder (from the working directory for a spec without a file).

With `widen = true`, an arm whose best value (on every selection seed's result) is an end of the
values it searched also trains the next entry of `values` beyond that end, and so on until its
best is interior or `values` ends: the select stage then runs in rounds (`expand("select",
rows)` lists the runs the results so far call for). "Best" is `SearchProtocol.pick`'s, the rule
`selection.select` applies.

Unquoted keys (`model.gamma = [...]`) are TOML sub-tables and mean the same as quoted dotted keys.
A variant's overrides win over the grid; a variant that fixes a grid axis collapses that axis for
its runs (identical configs are run once). Every run's id is a short hash of its canonical full
config (defaults filled in, numbers normalised, keys sorted), so it does not depend on the order
of the grid, on how a value is spelled (`1` or `1.0`) or on whether a default is written out.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from momentum_interp.config import MomentumConfig, is_finite_real
from momentum_interp.toml_config import load_toml
from momentum_interp.training.config import OptimConfig, RunConfig

TABLES = ("model", "task", "train")
VARIANT_LABEL = "label"
ID_LENGTH = 12
# Model fields that are not part of a run's identity: the device is the runner's choice, and
# d_vocab / n_ctx default to the task's (a spec that writes them out changes the id, as it should).
_MODEL_NOT_DEFAULTED = {"device", "d_vocab", "n_ctx"}
# Fields added after sweeps were committed: left out of the canonical config (and the id) while
# at their default, so the ids of every earlier run stay what they were.
_OMITTED_AT_DEFAULT = {
    "model": {"shear_norm": False, "learned_temperature": False},
    "train": {"history_checkpoints": 0},
}


def _model_defaults() -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(MomentumConfig):
        if f.name in _MODEL_NOT_DEFAULTED or f.default is dataclasses.MISSING:
            continue
        out[f.name] = f.default
    out["dtype"] = "float32"
    return out


def _task_defaults(name: str) -> dict[str, Any] | None:
    """Default arguments of the task's builder, or None if the task name is unknown."""
    from momentum_interp.data.registry import TASK_BUILDERS

    builder = TASK_BUILDERS.get(name)
    if builder is None:
        return None
    out = {}
    for param in inspect.signature(builder).parameters.values():
        if param.default is not inspect.Parameter.empty:
            out[param.name] = param.default
    return out


def valid_fields(table: str, task_name: str | None = None) -> set[str] | None:
    """Field names allowed under `table` (None: the task is unknown, so anything goes there)."""
    if table == "model":
        return {f.name for f in dataclasses.fields(MomentumConfig)}
    if table == "train":
        return {f.name for f in dataclasses.fields(OptimConfig)}
    if table == "task":
        defaults = _task_defaults(task_name) if task_name else None
        if defaults is None:
            return None
        from momentum_interp.data.registry import TASK_BUILDERS

        return {"name", *inspect.signature(TASK_BUILDERS[task_name]).parameters}
    raise KeyError(table)


def check_path(path: str, task_name: str | None = None) -> tuple[str, str]:
    """Split a dotted path `table.field`; ValueError naming the path if it is not a config field."""
    parts = path.split(".")
    if len(parts) != 2 or parts[0] not in TABLES or not parts[1]:
        raise ValueError(
            f"Unknown sweep path {path!r}: paths are 'table.field' with table one of "
            f"{list(TABLES)}, e.g. 'model.gamma' or 'train.seed'."
        )
    table, name = parts
    valid = valid_fields(table, task_name)
    if valid is not None and name not in valid:
        where = f"task {task_name!r}" if table == "task" else f"[{table}]"
        raise ValueError(
            f"Unknown sweep path {path!r}: {name!r} is not a field of {where}. "
            f"Valid fields: {sorted(valid)}."
        )
    return table, name


def _normalise(value: Any, default: Any) -> Any:
    """`1` → `1.0` where the field is a float, tuples → lists: one spelling per value."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, tuple | list) and isinstance(value, list):
        return [_normalise(v, d) for v, d in zip(value, default, strict=False)] + value[
            len(default) :
        ]
    return value


def canonical_config(config: dict[str, Any]) -> dict[str, Any]:
    """The full run config (`model`, `task`, `train`; no name) with every default filled in."""
    model_defaults = _model_defaults()
    train_defaults = dataclasses.asdict(OptimConfig())
    task_defaults = _task_defaults(config["task"].get("name", "")) or {}
    out = {}
    for table, defaults in (
        ("model", model_defaults),
        ("task", task_defaults),
        ("train", train_defaults),
    ):
        given = config.get(table, {})
        merged = {k: _normalise(v, None) for k, v in defaults.items()}
        merged.update({k: _normalise(v, defaults.get(k)) for k, v in given.items()})
        for name, default in _OMITTED_AT_DEFAULT.get(table, {}).items():
            if merged.get(name, default) == default:
                merged.pop(name, None)
        out[table] = merged
    return out


def run_id(config: dict[str, Any]) -> str:
    """Short stable hash of the canonical config: same run, same id, whatever the spelling."""
    text = json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """`{"model": {"gamma": 1}}` → `{"model.gamma": 1}` (lists are kept as values)."""
    out = {}
    for table in TABLES:
        for name, value in config.get(table, {}).items():
            out[f"{table}.{name}"] = value
    return out


def _flatten_overrides(table: dict[str, Any]) -> dict[str, Any]:
    """TOML `{"model": {"gamma": x}}` (unquoted dotted key) and `{"model.gamma": x}` alike."""
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            for sub, inner in _flatten_overrides(value).items():
                out[f"{key}.{sub}"] = inner
        else:
            out[key] = value
    return out


@dataclass
class RunSpec:
    """One run of a sweep: its id, the overrides that made it, and the full run config."""

    run_id: str
    config: dict[str, Any]  # {"model": ..., "task": ..., "train": ...}: base with overrides applied
    overrides: dict[str, Any]
    variant: str | None = None

    def run_config(self, name: str | None = None) -> RunConfig:
        return RunConfig.from_dict({**copy.deepcopy(self.config), "name": name or self.run_id})

    @property
    def canonical(self) -> dict[str, Any]:
        return canonical_config(self.config)


STAGES = ("select", "fresh")
AROUND_MATCH = "model.gamma"  # with the variant label, what matches an arm to its reference arm


def finite(value: Any) -> float | None:
    """A criterion as a float, or None when it is missing or not finite (a diverged run)."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def selection_scores(
    protocol: SearchProtocol, runs: list[RunSpec], rows: list[dict[str, Any]]
) -> dict[tuple[str, str], dict[int, float | None]]:
    """`(arm, repr(value)) → {seed: criterion}` of the `runs` that have a row in `rows` (None
    where the criterion is not finite: a diverged run)."""
    by_id = {row["run_id"]: row for row in rows}
    scores: dict[tuple[str, str], dict[int, float | None]] = {}
    for run in runs:
        if run.run_id in by_id:
            value = repr(flatten(run.config)[protocol.search])
            seeds = scores.setdefault((protocol.arm_key(run.config), value), {})
            seeds[run.config["train"]["seed"]] = finite(by_id[run.run_id].get(protocol.criterion))
    return scores


def selection_means(
    protocol: SearchProtocol, scores: dict[tuple[str, str], dict[int, float | None]]
) -> Callable[[str, Any], float | None]:
    """`(arm, value) →` the mean criterion over every selection seed in `scores`
    (`selection_scores`); None when a seed's criterion is not finite; `LookupError` while a seed
    has no result."""

    def mean(arm: str, value: Any) -> float | None:
        seeds = scores.get((arm, repr(value)), {})
        if set(seeds) != set(protocol.selection_seeds):
            raise LookupError(f"{arm} at {value!r}: a selection seed has no result yet")
        got = [score for score in seeds.values() if score is not None]
        return sum(got) / len(got) if len(got) == len(seeds) else None

    return mean


@dataclass
class SearchProtocol:
    """Choose `search` per arm on `selection_seeds`, then report on `fresh_seeds` (module doc)."""

    search: str
    values: list[Any]
    selection_seeds: list[int]
    fresh_seeds: list[int]
    criterion: str = "auc_accuracy"
    around: str | None = None  # an earlier selection.json: search only near each arm's pick there
    neighbours: int | None = None  # positions of `values` searched either side of that pick
    # sized fresh seeds: the first n of `fresh_seeds`, n from the selection seeds' spread so that
    # a paired difference of this size is detected (`selection.fresh_seed_count`)
    detect_difference: float | None = None
    min_fresh_seeds: int = 5
    widen: bool = False  # an arm whose best is an end of its values also tries the next beyond
    # the floor check: the fresh stage runs only if some selection run's final accuracy is above
    floor: float | None = None
    # read from `around`: each reference arm's variant, γ and pick (kept in sweep_spec.json)
    around_picks: list[dict[str, Any]] = field(default_factory=list, init=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], folder: Path = Path()) -> SearchProtocol:
        """The protocol of a `[protocol]` table; `folder`: where a relative `around` is read."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"Unknown [protocol] key(s) {unknown}; expected {sorted(names)}.")
        missing = sorted(
            n for n in ("search", "values", "selection_seeds", "fresh_seeds") if n not in data
        )
        if missing:
            raise ValueError(f"[protocol] needs {missing}.")
        protocol = cls(**data)
        check_path(protocol.search)
        for name in ("values", "selection_seeds", "fresh_seeds"):
            value = getattr(protocol, name)
            if not isinstance(value, list) or not value:
                raise ValueError(f"[protocol] {name} must be a non-empty list, got {value!r}.")
        seeds = [*protocol.selection_seeds, *protocol.fresh_seeds]
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ValueError(f"[protocol] seeds must be integers, got {seeds!r}.")
        difference = protocol.detect_difference
        if difference is not None and not (is_finite_real(difference) and difference > 0):
            raise ValueError(
                "[protocol] detect_difference must be a finite number > 0 (the paired difference "
                f"in the criterion the fresh seeds must detect), got {protocol.detect_difference!r}."
            )
        least = protocol.min_fresh_seeds
        if difference is not None and (
            isinstance(least, bool)
            or not isinstance(least, int)
            or not 1 <= least <= len(protocol.fresh_seeds)
        ):
            raise ValueError(
                f"[protocol] min_fresh_seeds must lie in [1, {len(protocol.fresh_seeds)}] (the "
                f"number of fresh_seeds listed), got {protocol.min_fresh_seeds!r}."
            )
        if not isinstance(protocol.widen, bool):
            raise ValueError(f"[protocol] widen must be true or false, got {protocol.widen!r}.")
        if protocol.floor is not None and not (
            is_finite_real(protocol.floor) and 0 <= protocol.floor < 1
        ):
            raise ValueError(
                "[protocol] floor must be a final accuracy in [0, 1) (the fresh stage runs only if "
                f"some selection run ends above it), got {protocol.floor!r}."
            )
        shared = sorted(set(protocol.selection_seeds) & set(protocol.fresh_seeds))
        if shared:
            raise ValueError(
                f"[protocol] seeds {shared} are both selection and fresh seeds; the numbers "
                "reported must come from seeds that did not choose the value."
            )
        protocol._read_around(folder)
        return protocol

    def _read_around(self, folder: Path) -> None:
        """Check `around` / `neighbours` and read the reference picks (before any run)."""
        if (self.around is None) != (self.neighbours is None):
            raise ValueError(
                "[protocol] around and neighbours go together: the earlier selection.json and "
                "how many steps of values to search either side of its picks."
            )
        if self.around is None:
            return
        n = self.neighbours
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"[protocol] neighbours must be an integer >= 0, got {n!r}.")
        path = folder / self.around
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            picks = [
                {
                    "variant": arm["variant"],
                    "gamma": arm["config"].get(AROUND_MATCH),
                    "chosen": arm["chosen"],
                }
                for arm in data["arms"]
            ]
        except OSError as e:
            raise ValueError(
                f"[protocol] around: cannot read {path} ({e.strerror}; a relative path is read "
                "from the spec file's folder)."
            ) from e
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(
                f"[protocol] around: {path} is not a selection.json (arms with variant, config "
                f"and chosen): {e!r}."
            ) from e
        if data.get("search") != self.search:
            raise ValueError(
                f"[protocol] around: {path} searched {data.get('search')!r}, this spec searches "
                f"{self.search!r}."
            )
        self.around_picks = picks

    @staticmethod
    def pick(means: list[float | None]) -> int | None:
        """The index of the best mean criterion (higher is better; exact ties: the first, in
        `values` order; None, a diverged value, ranks last); None when no mean is finite."""
        finite = [i for i, m in enumerate(means) if m is not None]
        return max(finite, key=lambda i: (means[i], -i)) if finite else None

    def arm_values(
        self,
        variant: str | None,
        config: dict[str, Any],
        mean: Callable[[Any], float | None] | None = None,
    ) -> list[Any]:
        """The values an arm searches: all of `values`, or (with `around`) the ones within
        ± `neighbours` positions of its reference arm's pick; with `widen`, extended past an end
        that is best while `mean(value)` (its mean criterion over the selection seeds, None if
        one diverged; raises `LookupError` while a seed has no result) says so (module doc)."""
        values = self._window(variant, config)
        while self.widen and mean is not None:
            try:
                best = self.pick([mean(v) for v in values])
            except LookupError:
                return values  # results still missing: no further value is called for yet
            first, last = self.values.index(values[0]), self.values.index(values[-1])
            if best == 0 and first > 0:
                values = [self.values[first - 1], *values]
            elif best == len(values) - 1 and last < len(self.values) - 1:
                values = [*values, self.values[last + 1]]
            else:
                return values
        return values

    def _window(self, variant: str | None, config: dict[str, Any]) -> list[Any]:
        """The values searched before any widening: all, or the `around` window."""
        if self.around is None:
            return list(self.values)
        gamma = flatten(canonical_config(config)).get(AROUND_MATCH)
        matches = [p for p in self.around_picks if p["variant"] == variant and p["gamma"] == gamma]
        if len(matches) != 1:
            listed = sorted({f"{p['variant']} γ={p['gamma']}" for p in self.around_picks})
            raise ValueError(
                f"[protocol] around: {len(matches)} arms of {self.around} match variant "
                f"{variant!r} at {AROUND_MATCH} = {gamma} (exactly one must); its arms: {listed}."
            )
        chosen = matches[0]["chosen"]
        if chosen not in self.values:
            raise ValueError(
                f"[protocol] around: {self.around} chose {self.search} = {chosen!r} for "
                f"{variant!r} at {AROUND_MATCH} = {gamma}, which is not in [protocol] values "
                f"{self.values}; add it there (a pick of None: that arm diverged everywhere)."
            )
        at = self.values.index(chosen)
        return self.values[max(0, at - self.neighbours) : at + self.neighbours + 1]

    def arm_key(self, config: dict[str, Any]) -> str:
        """A run's arm: its canonical config without the searched field and the seed."""
        flat = flatten(canonical_config(config))
        flat.pop(self.search, None)
        flat.pop("train.seed", None)
        return json.dumps(flat, sort_keys=True, default=str)


@dataclass
class SweepSpec:
    """A base config, a grid of dotted paths → value lists, and variants of overrides."""

    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    variants: list[dict[str, Any]] = field(default_factory=list)
    name: str = "sweep"
    source: str | None = None
    protocol: SearchProtocol | None = None

    def __post_init__(self) -> None:
        for table in ("model", "task"):
            if not isinstance(self.base.get(table), dict):
                raise ValueError(f"The sweep spec needs a [{table}] table.")
        self.base.setdefault("train", {})
        task_name = self.base["task"].get("name")
        if "task.name" in self.grid or any("task.name" in v for v in self.variants):
            task_name = None  # task fields are checked per run by expand()
        for path, values in self.grid.items():
            check_path(path, task_name)
            if not isinstance(values, list) or not values:
                raise ValueError(
                    f"[grid] {path!r} must be a non-empty list of values, got {values!r}."
                )
        for index, variant in enumerate(self.variants):
            for path in variant:
                if path != VARIANT_LABEL:
                    check_path(path, task_name)
            label = variant.get(VARIANT_LABEL, f"variant{index}")
            if not isinstance(label, str):
                raise ValueError(f"[[variants]] label must be a string, got {label!r}.")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> SweepSpec:
        data = dict(data)
        unknown = sorted(set(data) - {*TABLES, "grid", "variants", "name", "protocol"})
        if unknown:
            raise ValueError(
                f"Unknown top-level key(s) {unknown} in the sweep spec; expected [model], [task], "
                "[train], [grid], [[variants]], [protocol] and name."
            )
        protocol = data.get("protocol")
        if protocol is not None:
            if not isinstance(protocol, dict):
                raise ValueError("protocol must be a table ([protocol]).")
            folder = Path(source).parent if source is not None else Path()
            protocol = SearchProtocol.from_dict(protocol, folder)
            clash = {protocol.search, "train.seed"} & set(_flatten_overrides(data.get("grid", {})))
            if clash:
                raise ValueError(
                    f"[grid] sets {sorted(clash)}, which [protocol] chooses; remove it from [grid]."
                )
        variants = data.get("variants", [])
        if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
            raise ValueError("variants must be an array of tables ([[variants]]).")
        return cls(
            base={t: dict(data[t]) for t in TABLES if t in data},
            grid=_flatten_overrides(data.get("grid", {})),
            variants=[_flatten_overrides(v) for v in variants],
            name=data.get("name", "sweep"),
            source=source,
            protocol=protocol,
        )

    def _variant_list(self) -> list[tuple[str | None, dict[str, Any]]]:
        if not self.variants:
            return [(None, {})]
        return [
            (
                v.get(VARIANT_LABEL, f"variant{i}"),
                {k: x for k, x in v.items() if k != VARIANT_LABEL},
            )
            for i, v in enumerate(self.variants)
        ]

    def expand(
        self, stage: str | None = None, rows: list[dict[str, Any]] | None = None
    ) -> list[RunSpec]:
        """Every run: grid product × variants, identical configs once, in a deterministic order.

        With a `[protocol]`, `stage="select"` adds its searched values × selection seeds to the
        grid, each arm keeping its own values (`SearchProtocol.arm_values`, widened as the
        results `rows` so far call for when the protocol widens); the fresh stage needs the
        selection's results (`expand_fresh`)."""
        grid = dict(self.grid)
        if self.protocol is not None:
            if stage != "select":
                raise ValueError(
                    "This spec has a [protocol]: expand(stage='select'), or expand_fresh(chosen) "
                    "with the values chosen on the selection seeds."
                )
            grid[self.protocol.search] = self.protocol.values
            grid["train.seed"] = self.protocol.selection_seeds
        elif stage is not None:
            raise ValueError(f"stage={stage!r} needs a [protocol] table in the spec.")
        runs = self._expand(grid)
        protocol = self.protocol
        if protocol is None or (protocol.around is None and not protocol.widen):
            return runs
        mean = selection_means(protocol, selection_scores(protocol, runs, rows or []))
        searched: dict[str, list[Any]] = {}
        for run in runs:
            key = protocol.arm_key(run.config)
            if key not in searched:
                searched[key] = protocol.arm_values(
                    run.variant, run.config, lambda value, key=key: mean(key, value)
                )
        return [
            r
            for r in runs
            if flatten(r.config)[protocol.search] in searched[protocol.arm_key(r.config)]
        ]

    def expand_fresh(self, chosen: dict[str, Any], seeds: list[int] | None = None) -> list[RunSpec]:
        """The fresh stage: every arm (`SearchProtocol.arm_key`) of the selection at its chosen
        value (`chosen[arm_key]`), on `seeds` (default: every fresh seed; a sized study passes
        `Selection.fresh_seeds`). An arm missing from `chosen` is an error."""
        protocol = self.protocol
        if protocol is None:
            raise ValueError("expand_fresh needs a [protocol] table in the spec.")
        arms, runs, seen = {}, [], set()
        for run in self.expand("select"):
            arms.setdefault(protocol.arm_key(run.config), run)
        missing = [key for key in arms if key not in chosen]
        if missing:
            raise ValueError(
                f"{len(missing)} arm(s) have no chosen {protocol.search}: run the select stage "
                "to its end first."
            )
        for key, template in arms.items():
            for seed in protocol.fresh_seeds if seeds is None else seeds:
                overrides = {
                    **{k: v for k, v in template.overrides.items() if k != "train.seed"},
                    protocol.search: chosen[key],
                    "train.seed": seed,
                }
                config = copy.deepcopy(template.config)
                for path, value in overrides.items():
                    table, name = path.split(".")
                    config[table][name] = copy.deepcopy(value)
                rid = run_id(config)
                if rid not in seen:
                    seen.add(rid)
                    runs.append(RunSpec(rid, config, overrides, template.variant))
        return runs

    def _expand(self, grid: dict[str, list[Any]]) -> list[RunSpec]:
        paths = list(grid)
        runs, seen = [], set()
        for label, variant in self._variant_list():
            for values in itertools.product(*(grid[p] for p in paths)):
                overrides = {**dict(zip(paths, values, strict=True)), **variant}
                config = copy.deepcopy(self.base)
                for path, value in overrides.items():
                    table, name = path.split(".")
                    config[table][name] = copy.deepcopy(value)
                task_name = config["task"].get("name")
                for path in overrides:
                    if path.startswith("task."):
                        check_path(path, task_name)
                _validate(config, overrides)
                rid = run_id(config)
                if rid in seen:
                    continue
                seen.add(rid)
                runs.append(RunSpec(rid, config, overrides, label))
        return runs

    def varying_paths(self) -> list[str]:
        """Dotted paths whose value differs between the spec's runs."""
        flats = [flatten(r.canonical) for r in self.expand(self.protocol and "select")]
        keys = sorted({k for f in flats for k in f})
        return [k for k in keys if len({json.dumps(f.get(k), default=str) for f in flats}) > 1]


def _validate(config: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Build the run and (for cheap synthetic tasks) its model config, so bad values fail now."""
    try:
        run = RunConfig.from_dict({**copy.deepcopy(config), "name": "check"})
        if run.task.get("name") != "text":  # the text task trains a tokenizer: too slow to check
            from momentum_interp.data import make_task

            task = make_task(**run.task)
            run.model_config(task.d_vocab, task.seq_len)
    except (ValueError, TypeError) as e:
        raise ValueError(f"Run with overrides {overrides} is invalid: {e}") from e


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a TOML sweep spec; errors name the file and the problem."""
    build = lambda data: SweepSpec.from_dict(data, source=str(path))  # noqa: E731
    return load_toml(path, "Sweep spec", "configs/sweeps/", build)
