"""Hardening found from outside (issue 11): each test here failed before its fix."""

def test_supervisor_writes_no_core_file(node):
    """The supervisor holds the admin token: no core file (0/0), like every
    service process (test_wall_client.py covers those)."""
    with open("/proc/%d/limits" % node.proc.pid) as f:
        line = next(l for l in f if l.startswith("Max core file size"))
    assert line.split()[4:6] == ["0", "0"], line

