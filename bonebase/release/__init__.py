"""Model releases: the registry (candidates, approvals, deployments, rollback), the release gate,
serving the champion with BentoML under a supervisor, and the scheduled retraining.

``registry`` records and gates models; ``gate`` holds the release policy and its checks;
``serving`` puts a registry model into BentoML's store and starts ``bentoml serve``;
``supervisor`` keeps one such server running; ``retrain`` and ``schedule`` are the retraining run
and its Prefect cron; ``cli`` is `bonebase models …`, `bonebase retrain` and `bonebase schedule …`.
"""
