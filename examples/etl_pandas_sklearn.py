"""A pandas + scikit-learn job, as a data scientist writes one: load, clean, join, aggregate,
fit a model, score it. Used by tests/bench/bench_peak.py as a real program to record.

    mprofxx run --peak examples/etl_pandas_sklearn.py
    mprofxx peak --lines
    mprofxx flame -o peak.html
"""

import io

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ROWS = 300_000


def extract(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    orders = pd.DataFrame({
        "order_id": np.arange(rows),
        "customer": rng.integers(0, 20_000, rows),
        "amount": rng.gamma(2.0, 30.0, rows).round(2),
        "channel": rng.choice(["web", "shop", "phone", "partner"], rows),
        "day": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), "D"),
    })
    text = io.StringIO()  # the customers arrive as CSV text, as from a file
    pd.DataFrame({
        "customer": np.arange(20_000),
        "region": rng.choice(["north", "south", "east", "west"], 20_000),
        "age": rng.integers(18, 90, 20_000),
    }).to_csv(text, index=False)
    text.seek(0)
    return orders, pd.read_csv(text)


def transform(orders: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    orders = orders[orders["amount"] > 1.0].copy()
    orders["month"] = orders["day"].dt.month
    orders["label"] = orders["channel"].str.upper().str[:1]
    joined = orders.merge(customers, on="customer", how="left")
    totals = joined.groupby(["customer", "month"], as_index=False)["amount"].agg(["sum", "count"])
    features = joined.merge(totals, on=["customer", "month"])
    features["share"] = features["amount"] / features["sum"]
    features["big"] = (features["amount"] > features["amount"].quantile(0.8)).astype(int)
    return features


def model(features: pd.DataFrame) -> float:
    columns = ["amount", "age", "count", "share", "month", "region", "channel"]
    train, test = train_test_split(features, test_size=0.25, random_state=0)
    prepare = ColumnTransformer([
        ("numbers", StandardScaler(), ["amount", "age", "count", "share", "month"]),
        ("names", OneHotEncoder(handle_unknown="ignore"), ["region", "channel"]),
    ])
    pipeline = Pipeline([("prepare", prepare),
                         ("fit", HistGradientBoostingClassifier(max_iter=30, random_state=0))])
    pipeline.fit(train[columns], train["big"])
    return float(pipeline.score(test[columns], test["big"]))


def main() -> None:
    orders, customers = extract(ROWS)
    features = transform(orders, customers)
    print(f"{len(features):,} rows, accuracy {model(features):.3f}")


if __name__ == "__main__":
    main()
