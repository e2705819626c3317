"""The walk's table of docs/federated.md. The deployment lines need a server, hospitals and a
network of their own: tests/federated/test_deploy.py runs `certs`, `server`, `client` and
`start` as processes on 127.0.0.1 with TLS (its own ports, folders and certificate names in place
of the guide's); the simulation lines are run by tests/federated/test_simulation.py."""

from __future__ import annotations

from tests.e2e.guide_walk import ELSEWHERE, NOT_RUN, Entry

DOC = "docs/federated.md"
DEPLOY = ("tests/federated/test_deploy.py::test_superlink_and_two_supernodes_over_tls_train_and_"
          "register runs it as a process")

TABLE = [
    Entry(DOC, "bonebase federated homes --from data --to federated-homes --sites HX,BJ1,MUC",
          ELSEWHERE, note="tests/federated/conftest.py cuts the session's consortium into homes "
          "with the function behind it (bonebase.federated.homes.partition_export)"),
    Entry(DOC, 'bonebase federated run --sites HX,BJ1,MUC --homes federated-homes --rounds 8 '
          '--eval-data data --by "A. Engineer"', ELSEWHERE,
          note="tests/federated/test_simulation.py runs it (4 rounds of a quarter epoch, a tiny "
          "network), then approves and deploys the candidate"),
    Entry(DOC, "bonebase federated certs --out federated-certs --host fl.consortium.example.org "
          "--host 203.0.113.10", ELSEWHERE, note=DEPLOY + " (--host 127.0.0.1)"),
    Entry(DOC, "bonebase federated server --certs federated-certs", ELSEWHERE,
          note=DEPLOY + " on 127.0.0.1 ports, stopped and started again mid-test"),
    Entry(DOC, 'bonebase federated start --ca federated-certs/ca.crt --min-sites 2 '
          '--eval-data data --by "A. Engineer"', ELSEWHERE,
          note=DEPLOY + " (2 rounds of half an epoch, a tiny network, --register)"),
    Entry(DOC, "bonebase federated prepare", NOT_RUN,
          note="restores a dataset version of a hospital's home (bonebase dataset checkout's "
          "code, walked in docs/datasets.md); the walk's world is the consortium, not a hospital"),
    Entry(DOC, "bonebase federated client --site HX --server fl.consortium.example.org:9092 "
          "--ca ca.crt", ELSEWHERE, note=DEPLOY + ", twice (HX and BJ1, each with its own home)"),
    Entry(DOC, "python benchmarks/federated.py", NOT_RUN,
          note="a benchmark of minutes; the guide's figures come from running it"),
    *(Entry(DOC, f"python benchmarks/federated.py --train-seeds 7{flags}", NOT_RUN,
            note="a benchmark of an hour or more; the tables of 'Closing the gap' come from "
            "running it (its options are tested in tests/federated/test_strategies.py)")
      for flags in ("", " --bn-stats pooled",
                    " --strategy fedavgm --server-lr 3 --server-momentum 0",
                    " --strategy fedadam", " --strategy fedadam --server-lr 0.03",
                    " --strategy fedyogi", " --keep-round last")),
    Entry(DOC, "python benchmarks/federated.py --train-seeds 7    # (a), (c) and FedAvg, 10 rounds "
          "of one epoch", NOT_RUN, note="a benchmark of an hour or more; the rounds table of "
          "'Rounds of a fraction of an epoch' comes from running it"),
    *(Entry(DOC, f"python benchmarks/federated.py --train-seeds 7{flags}", NOT_RUN,
            note="a benchmark of an hour or more; the rounds table comes from running it (its "
            "options are tested in tests/federated/test_rounds.py and test_cli.py)")
      for flags in (" --keep-round last",
                    " --rounds 40 --rounds-per-epoch 4",
                    " --rounds 40 --rounds-per-epoch 4 --keep-round last",
                    " --rounds 40 --rounds-per-epoch 4 --keep-optimizer",
                    " --rounds 40 --rounds-per-epoch 4 --keep-optimizer --keep-round last",
                    " --keep-optimizer --keep-round last")),
    *(Entry(DOC, "python benchmarks/federated.py --seed 8 --work .bonebase/fedbench-d8-s7 "
            f"--train-seeds 7{flags}", NOT_RUN,
            note="a benchmark of 15-30 minutes a line; the data-seed-8 table comes from running "
            "it (the options are tested in tests/federated/test_rounds.py and test_cli.py)")
      for flags in (" --rounds 40 --rounds-per-epoch 4 --keep-optimizer --keep-round last",
                    " --keep-round last", "",
                    " --rounds 80 --rounds-per-epoch 4 --keep-optimizer --keep-round last")),
]
