"""Deterministic sample data for the demo: two insurers, one platform, overlapping people.

The people, their claims and their app behaviour are generated from one seed, so the demo (which
alone holds every member's data) can print the plaintext answer next to each joint result.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from node.store.datasets import AGE_BANDS, CHANNELS, SEGMENTS, write_csv

__all__ = ["AGE_BANDS", "CHANNELS", "SEGMENTS", "REGIONS", "PRODUCTS", "generate", "write_member_csvs"]
REGIONS = ("east", "west", "north", "south")
PRODUCTS = ("shipping-return", "flight-delay", "health-short", "phone-screen")


@dataclass
class MemberData:
    policies: list[dict]
    claims: list[dict]
    fraud_list: list[dict]


@dataclass
class SampleWorld:
    people: list[str]
    age_band: dict[str, str]
    insurers: dict[str, MemberData]
    user_features: list[dict]


def generate(seed: int = 2026, people: int = 3000, insurers: tuple[str, ...] = ("insurer_a", "insurer_b")) -> SampleWorld:
    rng = random.Random(seed)
    ids = [f"p{n:06d}" for n in range(people)]
    age = {p: rng.choice(AGE_BANDS) for p in ids}
    start = date(2026, 1, 1)
    data: dict[str, MemberData] = {}
    claim_seq = 0
    for index, name in enumerate(insurers):
        customers = rng.sample(ids, k=int(people * 0.5))
        policies, claims = [], []
        for n, person in enumerate(customers):
            policy_id = f"{name[-1]}-pol{n:06d}"
            policies.append({"policy_id": policy_id, "person_id": person, "product": rng.choice(PRODUCTS),
                             "premium": round(rng.uniform(5, 300), 2), "start_date": (start + timedelta(days=rng.randrange(200))).isoformat(),
                             "region": rng.choice(REGIONS)})
            # Older people and some regions claim more: the joint statistics have something to find.
            p_claim = 0.12 + 0.04 * AGE_BANDS.index(age[person])
            if rng.random() < p_claim:
                claim_seq += 1
                claims.append({"claim_id": f"c{claim_seq:07d}", "person_id": person, "policy_id": policy_id,
                               "amount": round(rng.lognormvariate(6 + 0.2 * AGE_BANDS.index(age[person]), 0.6), 2),
                               "claim_date": (start + timedelta(days=rng.randrange(300))).isoformat(),
                               "status": rng.choice(("paid", "paid", "open", "rejected")), "age_band": age[person],
                               "region": policies[-1]["region"]})
        fraud = [{"person_id": p, "listed_on": "2026-06-01", "reason": "staged loss"} for p in rng.sample(customers, k=15 + 5 * index)]
        data[name] = MemberData(policies, claims, fraud)
    platform_users = rng.sample(ids, k=int(people * 0.8))
    features = [{"person_id": p, "age_band": age[p], "channel": rng.choice(CHANNELS), "activity_segment": rng.choice(SEGMENTS)}
                for p in platform_users]
    return SampleWorld(ids, age, data, features)


def write_member_csvs(folder: Path, rows_by_dataset: dict[str, list[dict]]) -> dict[str, Path]:
    """One CSV per dataset, in the dataset's declared column order."""
    from node.store.datasets import dataset_schema

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for dataset, rows in rows_by_dataset.items():
        columns = dataset_schema(dataset).columns
        path = folder / f"{dataset}.csv"
        write_csv(path, columns, ([("" if r.get(c) is None else r.get(c)) for c in columns] for r in rows))
        paths[dataset] = path
    return paths
