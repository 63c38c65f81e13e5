"""A real annotate process killed with SIGKILL mid-run resumes to the uninterrupted catalog."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from galaxalign_astro.annotate import WorkDir, annotate_file

from .conftest import catalog_table


def _same_tables(a: Table, b: Table) -> None:
    assert a.colnames == b.colnames and len(a) == len(b)
    for name in a.colnames:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)


def _wait_for_parts(work: WorkDir, proc: subprocess.Popen, n: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if work.path.exists() and len(work.done_chunks()) >= n:
            return
        if proc.poll() is not None:
            _, err = proc.communicate()
            msg = f"annotate ended (status {proc.returncode}) before it could be killed:\n{err}"
            pytest.fail(msg)
        time.sleep(0.01)
    pytest.fail("annotate wrote no parts in time")


def test_sigkill_then_resume_gives_the_uninterrupted_catalog(
    catalog, micro_model, micro_predictor, survey_server, fetch_options, tmp_path
):
    """A real process killed mid-run (while fetching), then resumed."""
    path, table = catalog
    table = catalog_table(24)
    table.write(path, overwrite=True)
    out = tmp_path / "killed.parquet"
    # every request takes 0.1 s with one request at a time: a chunk of 4 rows takes 0.4 s
    survey_server.delay = 0.1
    args = [
        sys.executable,
        "-c",
        "from galaxalign_astro.cli.annotate import command; command()",
        str(path),
        "-o",
        str(out),
        "--model",
        str(micro_model),
        "--fetch",
        "legacysurvey",
        "--base-url",
        fetch_options["base_url"],
        "--cache-dir",
        fetch_options["cache_dir"],
        "--size",
        "48",
        "--max-workers",
        "1",
        "--rate-limit",
        "0",
        "--chunk-size",
        "4",
        "--batch-size",
        "4",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost"}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    work = WorkDir(out)
    try:
        _wait_for_parts(work, proc, 2, timeout=50)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    done = work.done_chunks()
    assert 2 <= len(done) < 6 and not out.exists()

    survey_server.delay = 0.0
    options = {k: fetch_options[k] for k in ("base_url", "cache_dir", "size", "rate_limit")}
    common = {
        "model": micro_predictor,
        "fetch": "legacysurvey",
        "chunk_size": 4,
        "batch_size": 4,
    }
    summary = annotate_file(
        path, out, fetch_options={**options, "max_workers": 1}, resume=True, **common
    )
    assert summary.rows_resumed == 4 * len(done) and summary.n_failed == 0
    reference = tmp_path / "reference.parquet"
    annotate_file(path, reference, fetch_options=options, **common)
    _same_tables(Table.read(out), Table.read(reference))
    assert Path(out).exists() and not work.exists()
