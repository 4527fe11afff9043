"""A job's peak memory is its own: not the benchmark process's, and its worker processes' too."""

from __future__ import annotations

import sys

from benchmarks.procs import run_job

MB = 1_000_000


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_small_job_started_by_a_large_process_reports_a_small_peak() -> None:
    ballast = bytearray(400 * MB)  # the spawning process holds 400 MB (touched: zero-filled by bytearray)
    ballast[::4096] = b"x" * len(ballast[::4096])
    run = run_job(_python("import time; time.sleep(0.3)"))
    assert run.peak_bytes < 100 * MB
    del ballast


def test_the_peak_of_a_job_that_allocates() -> None:
    run = run_job(
        _python("import time; b = bytearray(300_000_000); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.3)")
    )
    assert run.peak_bytes >= 300 * MB


def test_the_peak_counts_the_job_s_worker_processes() -> None:
    code = (
        "import multiprocessing as mp, time\n"
        "def hold(_):\n"
        "    b = bytearray(200_000_000); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)\n"
        "if __name__ == '__main__':\n"
        "    ps = [mp.Process(target=hold, args=(i,)) for i in range(2)]\n"
        "    [p.start() for p in ps]; [p.join() for p in ps]\n"
    )
    run = run_job(_python(code))
    assert run.peak_bytes >= 400 * MB  # two workers of 200 MB at once; the job's own process stays small


def test_pages_forked_workers_share_with_their_parent_count_once() -> None:
    code = (
        "import multiprocessing as mp, time\n"
        "def idle(_):\n"
        "    time.sleep(1.5)\n"
        "if __name__ == '__main__':\n"
        "    b = bytearray(300_000_000); b[::4096] = b'x' * len(b[::4096])\n"
        "    ps = [mp.get_context('fork').Process(target=idle, args=(i,)) for i in range(2)]\n"
        "    [p.start() for p in ps]; [p.join() for p in ps]\n"
    )
    run = run_job(_python(code))
    # three processes map the parent's 300 MB; summed resident sizes would read about 900 MB
    assert 300 * MB <= run.peak_bytes < 500 * MB
