"""The server's strategy: Flower's FedAvg, FedProx, or a server-side optimizer (FedAvgM, FedAdam,
FedYogi), optionally under differential privacy with fixed clipping, inside :class:`SiteWatch`,
which reads every reply before aggregation.

SiteWatch names the sites behind the replies and says, round by round, what happened: a site
with no data for the task is excluded with its message; a site that refuses the model (another
network, image size or classes) stops the run at that round with its reason; a site that drops
out mid-round (its reply is an error, or never comes) leaves the round to the others when at
least ``min_sites`` replied, and the round says so; fewer stop the run. It also keeps what the
lineage needs: each site's dataset version, per-round metrics per site, the bytes each client
sent, the wall time of each round, and the round whose global model scored the best validation
AUC (weighted by the sites' validation cases): the model kept with ``keep-round best``, as
``pipelines/train.py`` keeps its best epoch (the default, ``last``, keeps the final round's). With
``keep-optimizer`` it says when a site comes back with a fresh optimizer (its node restarted).

BatchNorm's running statistics are statistics of the data, not weights a server optimizer
should step: SiteWatch sets them to the sites' average weighted by training images (what FedAvg
does) whatever the strategy, or, with ``bn-stats`` ``pooled``, to the statistics of the sites'
data pooled (:func:`bn_statistics`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    FedYogi,
    Strategy,
)

from bonebase.errors import BonebaseError
from bonebase.federated.client import EXCLUDED, REFUSED
from bonebase.federated.config import SERVER_LR


class FederationError(BonebaseError):
    """The run cannot go on (a refusal, or too few sites left)."""


def array_bytes(record: ArrayRecord) -> int:
    """Bytes of the arrays in ``record`` (what a client sends per round, before framing)."""
    return int(sum(len(a.data) for a in record.values()))


def tidy_state(record: ArrayRecord, reference: dict) -> ArrayRecord:
    """Averaged (and maybe noised) arrays back to the network's dtypes: integer counters
    rounded, BatchNorm running variances kept positive (noise may push them below zero, and a
    negative variance scores NaN). Post-processing: it costs differential privacy nothing."""
    out = {}
    for key, arr in record.items():
        value = arr.numpy()
        ref = reference[key]
        if key.endswith("running_var"):
            value = np.maximum(value, 1e-5)
        if not np.issubdtype(ref.dtype, np.floating):
            value = np.rint(value)
        out[key] = Array(np.asarray(value, dtype=ref.dtype))
    return ArrayRecord(out)


def bn_statistics(states: list[dict], weights: list[float], *, pooled: bool) -> dict:
    """The global BatchNorm running statistics from the sites' (``states``: name → array).

    ``pooled=False``: every ``running_mean`` and ``running_var`` averaged with ``weights`` (FedAvg's
    average). ``pooled=True``: the mean and variance of the sites' data taken together, each site
    weighing ``weights``: var = Σ wᵢ (varᵢ + meanᵢ²) − mean², i.e. the average variance plus the
    spread of the sites' means, which the average alone leaves out (non-IID sites differ in
    exactly that)."""
    total = float(sum(weights))
    share = [float(w) / total for w in weights]
    out: dict = {}
    for key in states[0]:
        if not key.endswith("running_mean"):
            continue
        var_key = key[: -len("running_mean")] + "running_var"
        means = [np.asarray(s[key], dtype=np.float64) for s in states]
        variances = [np.asarray(s[var_key], dtype=np.float64) for s in states]
        mean = sum(w * m for w, m in zip(share, means, strict=True))
        var = sum(w * v for w, v in zip(share, variances, strict=True))
        if pooled:
            var = var + sum(w * m * m for w, m in zip(share, means, strict=True)) - mean * mean
        out[key], out[var_key] = mean, np.maximum(var, 0.0)
    return out


def _server_lr(cfg: dict) -> float:
    return float(cfg["server-lr"]) or SERVER_LR[cfg["strategy"]]


def build_strategy(cfg: dict, n_sites: int) -> Strategy:
    """Flower's strategy named by ``strategy`` over all ``n_sites`` each round (every one
    weighting a site's update by its training images, ``num-examples``), wrapped for DP when
    ``dp-clip`` > 0. FedAvgM, FedAdam and FedYogi step the global model with the server
    learning rate ``server-lr`` along the sites' average update (FedAvgM with momentum
    ``server-momentum``; FedAdam and FedYogi with Flower's beta_1 0.9, beta_2 0.99, tau 1e-3)."""
    common = dict(
        fraction_train=1.0, fraction_evaluate=1.0,
        min_train_nodes=n_sites, min_evaluate_nodes=n_sites, min_available_nodes=n_sites,
    )  # fmt: skip
    name = cfg["strategy"]
    if name == "fedprox":
        inner: Strategy = FedProx(proximal_mu=float(cfg["proximal-mu"]), **common)
    elif name == "fedavgm":
        inner = FedAvgM(server_learning_rate=_server_lr(cfg),
                        server_momentum=float(cfg["server-momentum"]), **common)  # fmt: skip
    elif name in ("fedadam", "fedyogi"):
        kind = FedAdam if name == "fedadam" else FedYogi
        inner = kind(eta=_server_lr(cfg), eta_l=float(cfg["lr"]), **common)
    else:
        inner = FedAvg(**common)
    clip = float(cfg["dp-clip"])
    if clip > 0:
        wrapper = (
            DifferentialPrivacyClientSideFixedClipping
            if cfg["dp-side"] == "client"
            else DifferentialPrivacyServerSideFixedClipping
        )
        inner = wrapper(inner, float(cfg["dp-noise"]), clip, n_sites)
    return inner


class SiteWatch(Strategy):
    """Delegates to ``inner``; reads replies first (see the module doc)."""

    def __init__(
        self,
        inner: Strategy,
        *,
        min_sites: int,
        reference: dict,
        say: Callable[[str], None] = print,
        bn_stats: str = "average",
    ) -> None:
        self.inner = inner
        self.bn_stats = bn_stats
        self.min_sites = min_sites
        self.reference = reference
        self.say = say
        self.sites: dict[int, str] = {}  # node id → site code
        self.datasets: dict[str, str] = {}  # site code → dataset version
        self.exports: dict[str, dict] = {}  # site code → its export's image side
        self.excluded: dict[str, str] = {}  # site code → why
        self.dropped: list[dict] = []
        self.optimizer_resets: list[dict] = []  # keep-optimizer: a site back with a fresh one
        self.rounds: list[dict] = []
        self.asked: list[int] = []  # nodes the current stage sent a message to
        self.best: dict = {}  # the best-validated round: round, auc, its global arrays
        self._evaluating: ArrayRecord | None = None  # the global model this round evaluates
        self._started = 0.0

    # -- delegation ----------------------------------------------------------------------------
    def summary(self) -> None:
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._started = time.perf_counter()
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        self.asked = [m.metadata.dst_node_id for m in messages]
        return messages

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._evaluating = arrays
        messages = list(self.inner.configure_evaluate(server_round, arrays, config, grid))
        self.asked = [m.metadata.dst_node_id for m in messages]
        return messages

    # -- reading replies -----------------------------------------------------------------------
    def _name(self, msg: Message) -> str:
        node = msg.metadata.src_node_id
        return self.sites.get(node, f"node {node}")

    def _sort(self, server_round: int, replies: Iterable[Message], stage: str) -> list[Message]:
        replies = list(replies)
        answered = {m.metadata.src_node_id for m in replies}
        for node in self.asked:
            if node not in answered:  # no reply within round-timeout
                who = self.sites.get(node, f"node {node}")
                self.dropped.append({"round": server_round, "stage": stage, "site": who,
                                     "reason": "no reply within round-timeout"})  # fmt: skip
                self.say(f"round {server_round}: {who} dropped out of {stage} (no reply within "
                         "round-timeout)")  # fmt: skip
        valid: list[Message] = []
        for msg in replies:
            if not msg.has_error():
                site = str(msg.content["site"]["site"])
                self.sites[msg.metadata.src_node_id] = site
                self.datasets[site] = str(msg.content["site"]["dataset-version"])
                self.exports[site] = {"export-size": int(msg.content["site"]["export-size"])}
                valid.append(msg)
                continue
            code, reason = msg.error.code, str(msg.error.reason or "no reason given")
            if code == REFUSED:
                raise FederationError(f"round {server_round}: {reason}")
            if code == EXCLUDED:
                site = reason.split(":", 1)[0].removeprefix("site ").strip()
                self.sites[msg.metadata.src_node_id] = site
                if site not in self.excluded:
                    self.excluded[site] = reason
                    self.say(f"excluded: {reason}")
                continue
            who = self._name(msg)
            self.dropped.append({"round": server_round, "stage": stage, "site": who,
                                 "reason": reason[:300]})  # fmt: skip
            self.say(f"round {server_round}: {who} dropped out of {stage} ({reason[:200]})")
        if len(valid) < self.min_sites:
            raise FederationError(
                f"round {server_round}: only {len(valid)} site(s) replied to {stage} "
                f"({', '.join(self._name(m) for m in valid) or 'none'}); the minimum is "
                f"{self.min_sites} (min-sites): add sites or lower the minimum"
            )
        return valid

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        valid = self._sort(server_round, replies, "training")
        if hasattr(self.inner, "num_sampled_clients"):  # DP: noise scaled to who replied
            self.inner.num_sampled_clients = len(valid)
        sent = {self._name(m): array_bytes(m.content["arrays"]) for m in valid}
        per_site = {self._name(m): dict(m.content["metrics"]) for m in valid}
        self._check_optimizers(server_round, per_site)
        arrays, metrics = self.inner.aggregate_train(server_round, valid)
        if arrays is not None:
            arrays = tidy_state(self._bn_from_sites(arrays, valid), self.reference)
            if isinstance(self.inner, FedAvgM) and self.inner.current_arrays is not None:
                self.inner.current_arrays = arrays  # its next step starts from what was sent
        n_expected = len(self.asked) - sum(1 for m in replies if m.has_error()
                                            and m.error.code == EXCLUDED)  # fmt: skip
        self.rounds.append({
            "round": server_round, "sites": sorted(per_site), "train": per_site,
            "bytes_per_client": sent, "seconds_train": time.perf_counter() - self._started,
        })  # fmt: skip
        if len(valid) < n_expected:
            self.say(
                f"round {server_round}: completes with {len(valid)} of {n_expected} sites "
                f"(minimum {self.min_sites})"
            )
        return arrays, metrics

    def _check_optimizers(self, server_round: int, per_site: dict[str, dict]) -> None:
        """With keep-optimizer each site reports the steps its kept optimizer had taken before
        the round: none from a site that trained in an earlier round means its node lost that
        state (Flower keeps it in the node's memory: a restart). Said and recorded; the site
        goes on with a fresh optimizer and the run with it."""
        trained_before = {site for entry in self.rounds for site in entry.get("train", {})}
        for site, metrics in sorted(per_site.items()):
            if site in trained_before and int(metrics.get("optimizer-steps", -1)) == 0:
                self.optimizer_resets.append({"round": server_round, "site": site})
                self.say(f"round {server_round}: {site} trained with a fresh optimizer (its node "
                         "lost the optimizer state it keeps between rounds: restarted?)")

    def _bn_from_sites(self, arrays: ArrayRecord, valid: list[Message]) -> ArrayRecord:
        """BatchNorm's running statistics set from the sites' (see the module doc). The
        counters stay as aggregated (the sites send them back unchanged). Under DP the
        statistics stay the noised average, as they were: the sites' own are not clipped."""
        if not isinstance(self.inner, FedAvg):  # a DP wrapper (config refuses it with others)
            return arrays
        if type(self.inner) in (FedAvg, FedProx) and self.bn_stats == "average":
            return arrays  # FedAvg's own average is that average
        states = [{k: a.numpy() for k, a in m.content["arrays"].items()
                   if k.endswith(("running_mean", "running_var"))} for m in valid]  # fmt: skip
        weights = [float(m.content["metrics"]["num-examples"]) for m in valid]
        stats = bn_statistics(states, weights, pooled=self.bn_stats == "pooled")
        out = {k: (Array(np.asarray(stats[k], dtype=a.numpy().dtype)) if k in stats else a)
               for k, a in arrays.items()}  # fmt: skip
        return ArrayRecord(out)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord:
        valid = self._sort(server_round, list(replies), "evaluation")
        metrics = self.inner.aggregate_evaluate(server_round, valid)
        entry = self.rounds[-1] if self.rounds and self.rounds[-1]["round"] == server_round \
            else {"round": server_round}  # fmt: skip
        entry["evaluate"] = {self._name(m): dict(m.content["metrics"]) for m in valid}
        entry["evaluate_mean"] = dict(metrics) if metrics is not None else {}
        entry["seconds"] = time.perf_counter() - self._started
        score = float((metrics or {}).get("auc", float("nan")))
        # strictly better, as train()'s early stopping: a tie keeps the earlier round
        if self._evaluating is not None and np.isfinite(score) and score > self.best.get(
                "auc", -np.inf):  # fmt: skip
            self.best = {"round": server_round, "auc": score, "arrays": self._evaluating,
                         "evaluate_mean": entry["evaluate_mean"]}  # fmt: skip
        self._progress(entry)
        return metrics

    def kept(self, keep_round: str, final: ArrayRecord, rounds: int) -> dict:
        """The model the run keeps (run-config ``keep-round``): ``best``, the global model of the
        best-validated round (the last round's when none was scored); ``last``, ``final``, the
        global model after the last round. Its ``round``, ``arrays`` and ``evaluate_mean`` (the
        sites' weighted validation metrics of that model: its threshold)."""
        if keep_round == "best" and self.best:
            return {k: self.best[k] for k in ("round", "arrays", "evaluate_mean")}
        return {
            "round": self.rounds[-1]["round"] if self.rounds else rounds,
            "arrays": final,
            "evaluate_mean": self.rounds[-1].get("evaluate_mean", {}) if self.rounds else {},
        }

    def history(self) -> list[dict]:
        """One flat row per round, in the shape of a training history (``epoch`` = round): the
        training loss weighted by the sites' training images, the validation AUC and loss
        weighted by their validation cases, the sites, the largest update sent, the seconds."""
        rows = []
        for entry in self.rounds:
            train = entry.get("train", {})
            n = sum(float(m["num-examples"]) for m in train.values()) or 1.0
            mean = entry.get("evaluate_mean", {})
            rows.append({
                "epoch": entry["round"],
                "train_loss": sum(float(m["train-loss"]) * float(m["num-examples"])
                                  for m in train.values()) / n,
                "val_auc": float(mean.get("auc", float("nan"))),
                "val_loss": float(mean.get("loss", float("nan"))),
                "sites": len(train),
                "bytes_per_client": max(entry.get("bytes_per_client", {}).values(), default=0),
                "seconds": float(entry.get("seconds", float("nan"))),
            })  # fmt: skip
        return rows

    def _progress(self, entry: dict) -> None:
        mean = entry.get("evaluate_mean", {})
        sent = entry.get("bytes_per_client", {})
        per = ", ".join(f"{s} {v.get('auc', float('nan')):.3f}"
                        for s, v in sorted(entry.get("evaluate", {}).items()))  # fmt: skip
        mb = max(sent.values(), default=0) / 1e6
        self.say(
            f"round {entry['round']}: {len(entry.get('sites', []))} sites trained; val AUC "
            f"{mean.get('auc', float('nan')):.3f} (weighted; {per}); {mb:.2f} MB sent per "
            f"client; {entry['seconds']:.1f} s"
        )
