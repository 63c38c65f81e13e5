"""A full disk while writing HDF5: one-line error, old catalog intact, no crash at exit."""

import errno
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import errno, sys
    import numpy as np
    from galaxalign_astro.catalog import hdf5, open_writer
    from galaxalign_astro.catalog.columns import ColumnSpec

    budget = [int(sys.argv[2])]
    real_write = hdf5._Discardable.write

    def full_disk(self, data):  # the disk fills after `budget` bytes
        size = len(memoryview(data))
        if not self.discard and size > budget[0]:
            self.failure = OSError(errno.ENOSPC, "No space left on device")
            raise self.failure
        budget[0] -= size
        return real_write(self, data)

    hdf5._Discardable.write = full_disk
    specs = [ColumnSpec("a", "f4", shape=(128,)), ColumnSpec("s", "U", width=40)]
    try:
        with open_writer(sys.argv[1], specs, meta={"MODEL": "x"}, overwrite=True) as w:
            for i in range(20):
                w.write({"a": np.random.rand(500, 128).astype("f4"), "s": np.array(["x"] * 500)})
    except OSError as exc:
        print(exc.errno, exc)
    """
)


def test_full_disk_is_one_line_and_keeps_the_old_catalog(tmp_path):
    out = tmp_path / "cat.h5"
    out.write_bytes(b"the previous catalog")
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), "100000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]  # no segfault at interpreter exit
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1, run.stdout
    assert lines[0].startswith(str(errno.ENOSPC))
    assert "cat.h5: cannot write the HDF5 catalog (No space left on device)" in lines[0]
    assert out.read_bytes() == b"the previous catalog"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.h5"]  # temporary file removed
    assert "Traceback" not in run.stderr
