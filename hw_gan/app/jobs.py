"""Long work of `hwgan app` (adapting the base model to a person's glyphs) as one background job
at a time, in a thread of the server: progress, time left, cancel. Its state is kept in
DATA/jobs/<id>.json, so a page that reloads (or another tab) finds it again; a job that fails or
is cancelled leaves the hands as they were (the new hand is renamed into place only at the
end)."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from data_pipeline import atomic
from hw_gan.app.store import StoreError, new_id

_STEP = re.compile(r"adapt (\w+): step (\d+)/(\d+)")


class Cancelled(Exception):
    """Raised inside a job's work when the person asked to stop it."""


class Busy(StoreError):
    """Another job is running."""


class Jobs:
    """At most one job runs; `start` refuses a second one (Busy) with a plain message."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.current: Optional[dict] = None
        self.cancel_event = threading.Event()
        self.thread: Optional[threading.Thread] = None
        for path in self.root.glob("*.json"):  # a server that stopped mid-job
            try:
                doc = json.loads(path.read_text())
            except ValueError:
                continue
            if doc.get("status") in ("running", "cancelling"):
                doc.update(status="failed", error="the app was stopped while this hand was being "
                           "made; start it again", finished=time.time())
                atomic.write_text(path, json.dumps(doc))

    def _save(self, job: dict) -> None:
        atomic.write_text(self.root / f"{job['id']}.json", json.dumps(job))

    def latest(self) -> Optional[dict]:
        with self.lock:
            if self.current is not None:
                return dict(self.current)
        docs = []
        for path in self.root.glob("*.json"):
            try:
                docs.append(json.loads(path.read_text()))
            except ValueError:
                continue
        return max(docs, key=lambda d: d.get("started", 0)) if docs else None

    def start(self, name: str, work: Callable[[Callable, Path], dict], embedding_steps: int,
              finetune_steps: int) -> dict:
        """Runs work(progress, tmp_dir) in a thread; progress(message) takes the adapter's log
        lines (and raises Cancelled once cancel() was called). work returns the new hand."""
        with self.lock:
            if self.current is not None:
                raise Busy(f"a hand is already being made ({self.current['name']!r}); wait for it "
                           "to finish or cancel it")
            job = {"id": new_id(), "name": name, "status": "running", "progress": 0.0,
                   "seconds_left": None, "message": "starting", "started": time.time(),
                   "error": None, "hand": None, "embedding_steps": int(embedding_steps),
                   "total_steps": int(embedding_steps) + int(finetune_steps)}
            self.current = job
            self.cancel_event.clear()
            self._save(job)
        tmp = self.root / f"work-{job['id']}"
        self.thread = threading.Thread(target=self._run, args=(job, work, tmp), daemon=True,
                                       name=f"hwgan-job-{job['id']}")
        self.thread.start()
        return dict(job)

    def _progress(self, job: dict) -> Callable[[str], None]:
        def progress(message: str) -> None:
            if self.cancel_event.is_set():
                raise Cancelled()
            m = _STEP.search(str(message))
            with self.lock:
                if m:
                    phase, step = m.group(1), int(m.group(2))
                    done = step + (job["embedding_steps"] if phase == "finetune" else 0)
                    frac = min(0.99, done / max(1, job["total_steps"]))
                    job["progress"] = frac
                    elapsed = time.time() - job["started"]
                    job["seconds_left"] = (round(elapsed * (1 - frac) / frac) if frac > 0.02
                                           else None)
                    job["message"] = ("learning the hand" if phase == "embedding" else
                                      "fine-tuning to the hand")
                elif "finetune: skipped" in str(message):
                    job["message"] = "fine-tuning skipped (too few glyphs per letter)"
                    job["total_steps"] = job["embedding_steps"]
                self._save(job)

        return progress

    def _run(self, job: dict, work, tmp: Path) -> None:
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            hand = work(self._progress(job), tmp)
            update = {"status": "done", "progress": 1.0, "seconds_left": 0, "hand": hand,
                      "message": "done"}
        except Cancelled:
            update = {"status": "cancelled", "message": "cancelled; your other hands are kept"}
        except Exception as e:  # noqa: BLE001 - a job that dies says why and keeps the hands
            update = {"status": "failed", "error": f"{type(e).__name__}: {e}"[:500],
                      "message": "failed; your other hands are kept"}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        with self.lock:
            job.update(update, finished=time.time())
            self._save(job)
            self.current = None

    def cancel(self, job_id: str) -> dict:
        with self.lock:
            if self.current is None or self.current["id"] != job_id:
                raise StoreError("that job is not running any more")
            self.cancel_event.set()
            self.current["status"] = "cancelling"
            self.current["message"] = "stopping"
            self._save(self.current)
            return dict(self.current)

    def wait(self, timeout: float = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)
