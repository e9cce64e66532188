"""A queue worker to develop inside the `worker` environment."""
import os
import time

while True:
    print("working on", os.environ.get("QUEUE", "default"), flush=True)
    time.sleep(5)
