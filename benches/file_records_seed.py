"""The Python seed (dataknobs-data) FileDatabase on the same workload as file_records.rs."""
import json, sys, tempfile, time, os

from dataknobs_data import Query, Record
from dataknobs_data.backends.file import SyncFileDatabase

RECORDS, BATCH = 100_000, 1000
CITIES = ["Paris", "Oslo", "Lima", "Quito", "Rome", "Kyiv", "Baku", "Doha"]
searches = int(sys.argv[1]) if len(sys.argv) > 1 else 10
d = tempfile.mkdtemp()
db = SyncFileDatabase({"path": os.path.join(d, "people.json"), "format": "json"})
s = time.perf_counter()
for b in range(RECORDS // BATCH):
    db.create_batch([Record({"name": f"person {n}", "age": n % 90, "city": CITIES[n % 8]})
                     for n in range(b * BATCH, (b + 1) * BATCH)])
create_s = time.perf_counter() - s
s = time.perf_counter()
found = 0
for i in range(searches):
    found += len(db.search(Query().filter("age", ">", i % 80).filter("city", "=", CITIES[i % 8])))
search_s = time.perf_counter() - s
assert found > 0
print(json.dumps({"engine": "python-seed", "format": "json", "creates_per_s": round(RECORDS / create_s),
                  "search_ms": round(search_s * 1000 / searches, 3)}))
