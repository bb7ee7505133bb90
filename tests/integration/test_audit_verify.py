"""`macronode audit verify` (issue 15): a log written by the audit library
(through the hidden `audit selftest-write` helper, docs/audit.md "Testing")
verifies; every kind of damage is refused with exit 3 and the FIRST bad
record or checkpoint named (file, offset, record index, stream, seq)."""
import json
import os
import re
import subprocess

from conftest import BIN, SLOW, open_fds, run_cli, wait_until


def write_log(tmp_path, name="log", n=40, seed=0, extra=()):
    d = tmp_path / name
    key = tmp_path / "identity.key"
    r = run_cli(["audit", "selftest-write", str(d), str(n), "--key", str(key),
                 "--seed", str(seed), "--segment-max", "65536"] + list(extra))
    assert r.returncode == 0, r.stderr
    return d


def verify(d, *args):
    return run_cli(["audit", "verify", str(d)] + list(args))


def segments(d):
    return sorted(p for p in os.listdir(d) if re.fullmatch(r"seg-\d{20}\.log", p))


def lines_of(path):
    """[(offset, bytes)] of the lines of a file (newline excluded)."""
    data = open(path, "rb").read()
    out, off = [], 0
    for ln in data.split(b"\n")[:-1]:
        out.append((off, ln))
        off += len(ln) + 1
    return out


def rewrite(path, lines):
    with open(path, "wb") as f:
        f.write(b"".join(ln + b"\n" for ln in lines))


def record_at(d, index):
    """(segment, offset, record) of global record index in d."""
    for seg in segments(d):
        ls = lines_of(d / seg)
        first = json.loads(ls[0][1])["first_index"]
        if first <= index < first + len(ls) - 1:
            off, ln = ls[1 + index - first]
            return seg, off, json.loads(ln)
    raise AssertionError("no record %d" % index)


def assert_bad(r, *needles):
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    first = r.stderr.splitlines()[0]
    for n in needles:
        assert n in first, (n, first)
    return first


def test_good_log_verifies(tmp_path):
    d = write_log(tmp_path, n=450)
    assert len(segments(d)) >= 3                  # rotation by size happened
    r = verify(d)
    assert r.returncode == 0, r.stderr
    assert "ok: %d segments, 450 records (index 0..449), 3 streams" % len(segments(d)) in r.stdout
    assert "checkpoints: 46 verified" in r.stdout  # every 10 records, and one at the end
    # The same with the key given explicitly (pubkey of the identity file).
    pk = run_cli(["audit", "pubkey", str(tmp_path / "identity.key")])
    assert pk.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", pk.stdout)
    (tmp_path / "pk").write_text(pk.stdout)
    assert verify(d, "--pubkey", str(tmp_path / "pk")).returncode == 0


def test_flipped_byte_names_the_record(tmp_path):
    d = write_log(tmp_path)
    seg, off, rec = record_at(d, 17)
    path = d / seg
    data = bytearray(open(path, "rb").read())
    at = data.index(b'"reason":"ok"', off) + 10
    data[at] ^= 0x20                               # "ok" -> "oK"
    open(path, "wb").write(bytes(data))
    first = assert_bad(verify(d), "%s offset %d: record 17 (stream %s, seq %d)"
                       % (seg, off, rec["stream"], rec["seq"]), "self_hash does not match")
    # A flipped byte that breaks the JSON itself is named at the same place.
    data[at] ^= 0x20
    data[off + 1] = ord("X")
    open(path, "wb").write(bytes(data))
    assert_bad(verify(d), "%s offset %d: record 17" % (seg, off), "not JSON")
    assert first


def test_truncated_segment(tmp_path):
    d = write_log(tmp_path)
    seg, off, _ = record_at(d, 30)
    path = d / seg
    # Cut in the middle of record 30: a torn record, named.
    os.truncate(path, off + 25)
    assert_bad(verify(d), "%s offset %d: record 30" % (seg, off), "torn record")
    # Cut on a line boundary: the chain is whole but the checkpoints over
    # records 30..39 cover more than the log holds.
    os.truncate(path, off)
    ck = lines_of(d / "checkpoints.log")
    assert_bad(verify(d), "checkpoints.log offset %d" % ck[3][0],
               "checkpoint covers 40 records but the log holds 30")


def test_removed_record(tmp_path):
    d = write_log(tmp_path)
    seg, off, rec = record_at(d, 12)
    path = d / seg
    ls = [ln for _, ln in lines_of(path)]
    del ls[1 + 12]
    rewrite(path, ls)
    # Record 12 is now what was 13 (another stream); the first one to break
    # is record 14, the next of record 12's stream, whose seq skips one.
    _, off14, rec14 = record_at(d, 14)
    assert rec14["stream"] == rec["stream"]
    assert_bad(verify(d), "%s offset %d: record 14 (stream %s, seq %d)"
               % (seg, off14, rec["stream"], rec["seq"] + 1),
               "seq %d where seq %d was due" % (rec["seq"] + 1, rec["seq"]))


def test_swapped_records_same_stream(tmp_path):
    d = write_log(tmp_path)
    seg, off, rec = record_at(d, 20)
    _, _, rec23 = record_at(d, 23)
    assert rec23["stream"] == rec["stream"]
    path = d / seg
    ls = [ln for _, ln in lines_of(path)]
    ls[1 + 20], ls[1 + 23] = ls[1 + 23], ls[1 + 20]
    rewrite(path, ls)
    assert_bad(verify(d), "%s offset %d: record 20 (stream %s, seq %d)"
               % (seg, off, rec["stream"], rec23["seq"]),
               "seq %d where seq %d was due" % (rec23["seq"], rec["seq"]))


def test_swapped_records_across_streams_caught_by_checkpoint(tmp_path):
    """Each stream's chain survives swapping neighbours of two streams; the
    signed Merkle root does not."""
    d = write_log(tmp_path)
    seg, _, _ = record_at(d, 20)
    path = d / seg
    ls = [ln for _, ln in lines_of(path)]
    ls[1 + 20], ls[1 + 21] = ls[1 + 21], ls[1 + 20]
    rewrite(path, ls)
    ck = lines_of(d / "checkpoints.log")
    assert_bad(verify(d), "checkpoints.log offset %d" % ck[2][0],
               "checkpoint of size 30: its root does not match the first 30 records")


def test_given_checkpoint_catches_a_cut_unsigned_tail(tmp_path):
    """Records after the newest stored checkpoint are chained, not signed:
    cutting them (with the checkpoints over them) leaves a log that verifies
    on its own. A checkpoint got apart from the copy (as GET
    /api/v1/audit/checkpoint serves it) must be reached: size and root."""
    d = write_log(tmp_path)            # checkpoints at 10, 20, 30, 40 and at the end
    ck = [ln for _, ln in lines_of(d / "checkpoints.log")]
    assert [json.loads(c)["size"] for c in ck][:4] == [10, 20, 30, 40]
    served = tmp_path / "served.json"
    served.write_bytes(ck[3] + b"\n")
    r = verify(d, "--checkpoint", str(served))
    assert r.returncode == 0, r.stderr
    assert "given checkpoint: size 40, signed, and the log's first 40 records have its root" \
        in r.stdout
    # The copy loses records 35..39 and the checkpoint over them: alone, it verifies.
    seg, off, _ = record_at(d, 35)
    os.truncate(d / seg, off)
    rewrite(d / "checkpoints.log", ck[:3])
    r = verify(d)
    assert r.returncode == 0 and "the last 5 records come after the newest checkpoint" in \
        r.stdout, r.stdout + r.stderr
    assert_bad(verify(d, "--checkpoint", str(served)), "against --checkpoint",
               "the given checkpoint covers 40 records but the log holds 35")
    # An older checkpoint the copy still reaches: fine.
    older = tmp_path / "older.json"
    older.write_bytes(ck[2])
    assert verify(d, "--checkpoint", str(older)).returncode == 0
    # The same node's genuine checkpoint over other records: the root differs.
    other = write_log(tmp_path, name="other", seed=1)
    theirs = tmp_path / "theirs.json"
    theirs.write_bytes(lines_of(other / "checkpoints.log")[2][1])
    assert json.loads(theirs.read_bytes())["size"] == 30
    assert_bad(verify(d, "--checkpoint", str(theirs)), "against --checkpoint",
               "the given checkpoint of size 30: its root does not match the first 30 records")
    # Reformatted (e.g. by jq) is the same checkpoint; a changed signature is not.
    c = json.loads(ck[2])
    older.write_text(json.dumps(c, indent=2))
    assert verify(d, "--checkpoint", str(older)).returncode == 0
    c["sig"] = ("0" if c["sig"][0] != "0" else "1") + c["sig"][1:]
    older.write_text(json.dumps(c))
    assert_bad(verify(d, "--checkpoint", str(older)), "against --checkpoint",
               "the given checkpoint: signature does not verify")
    # Not a checkpoint at all: a usage error naming the file.
    older.write_text('{"size": 3}')
    r = verify(d, "--checkpoint", str(older))
    assert r.returncode == 2 and "--checkpoint %s: not a checkpoint" % older in r.stderr, r.stderr


def test_forged_checkpoint_signature(tmp_path):
    d = write_log(tmp_path)
    path = d / "checkpoints.log"
    ls = lines_of(path)
    c = json.loads(ls[1][1])
    c["sig"] = ("0" if c["sig"][0] != "0" else "1") + c["sig"][1:]
    forged = json.dumps(c, sort_keys=True, separators=(",", ":")).encode()
    rewrite(path, [ls[0][1], forged] + [ln for _, ln in ls[2:]])
    assert_bad(verify(d), "checkpoints.log offset %d" % ls[1][0],
               "checkpoint of size 20: signature does not verify")
    # Signed by another key entirely: --pubkey pins the node.
    d2 = tmp_path / "other"
    r = run_cli(["audit", "selftest-write", str(d2), "5"])
    assert r.returncode == 0, r.stderr
    assert_bad(verify(d2, "--pubkey", str(d / "node.pub")), "checkpoints.log offset 0",
               "signed by another node")


def test_checkpoint_over_a_different_root(tmp_path):
    """A genuine signature by the same node over another log's root."""
    d = write_log(tmp_path)
    other = write_log(tmp_path, name="other", seed=1)
    mine, theirs = lines_of(d / "checkpoints.log"), lines_of(other / "checkpoints.log")
    assert json.loads(mine[1][1])["size"] == json.loads(theirs[1][1])["size"] == 20
    assert mine[1][1] != theirs[1][1]
    rewrite(d / "checkpoints.log", [mine[0][1], theirs[1][1]] + [ln for _, ln in mine[2:]])
    assert_bad(verify(d), "checkpoints.log offset %d" % mine[1][0],
               "checkpoint of size 20: its root does not match the first 20 records")


def test_stale_checkpoint(tmp_path):
    d = write_log(tmp_path)
    ls = [ln for _, ln in lines_of(d / "checkpoints.log")]
    ls[1], ls[2] = ls[2], ls[1]
    rewrite(d / "checkpoints.log", ls)
    first = assert_bad(verify(d), "checkpoints.log")
    assert "stale checkpoint: size 20" in first, first


def test_removed_segment_is_named(tmp_path):
    d = write_log(tmp_path, n=450)
    segs = segments(d)
    os.unlink(d / segs[1])
    assert_bad(verify(d), "%s offset 0" % segs[2], "does not continue the previous one")


def test_torn_tail_repaired_by_the_writer(tmp_path):
    d = write_log(tmp_path)
    seg, off, _ = record_at(d, 39)
    os.truncate(d / seg, off + 40)
    # The torn record was never acknowledged: reopening cuts it and says so.
    r = run_cli(["audit", "selftest-write", str(d), "5", "--key", str(tmp_path / "identity.key")])
    assert r.returncode != 0          # record 39 is gone but checkpoint 40 covers it
    assert "covers 40 records, the segments hold 39" in r.stderr, r.stderr
    # Without a checkpoint over it, recovery proceeds.
    d2 = write_log(tmp_path, name="log2", n=35, extra=["--checkpoint-every", "100"])
    rm = tmp_path / "log2" / "checkpoints.log"
    rewrite(rm, [])
    seg, off, _ = record_at(d2, 34)
    os.truncate(d2 / seg, off + 40)
    r = run_cli(["audit", "selftest-write", str(d2), "5", "--key", str(tmp_path / "identity.key")])
    assert r.returncode == 0, r.stderr
    assert "wrote 5 records (39 in all), after cutting a torn record" in r.stdout
    r = verify(d2)
    assert r.returncode == 0, r.stderr
    assert "39 records" in r.stdout


def test_retention_keeps_a_verifiable_log(tmp_path):
    d = write_log(tmp_path, n=450, extra=["--retain-bytes", "70000"])
    r = verify(d)
    assert r.returncode == 0, r.stderr
    m = re.search(r"(\d+) records \(index (\d+)\.\.449\)", r.stdout)
    assert m and int(m.group(2)) > 0, r.stdout
    first = int(m.group(2))
    # checkpoints.log lost the checkpoints over removed records, kept the rest.
    sizes = [json.loads(ln)["size"] for _, ln in lines_of(d / "checkpoints.log")]
    assert sizes == [s for s in range(10, 451, 10) if s >= first] + [450], (first, sizes)
    assert "checkpoints: %d verified against the records, 0 signed over records retention removed" \
        % len(sizes) in r.stdout, r.stdout
    # Removing the oldest segments is what retention does: only --from-zero refuses it.
    r = verify(d, "--from-zero")
    assert r.returncode == 3 and "starts at record %d, not 0" % first in r.stderr, r.stderr
    assert verify(write_log(tmp_path, name="full"), "--from-zero").returncode == 0


def fd_at_end(pid, path):
    """Has process pid the file path open, at its end?"""
    path = os.path.realpath(path)
    size = os.path.getsize(path)
    for fd, target in open_fds(pid):
        if target != path:
            continue
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                pos = int(f.readline().split()[1])
        except (FileNotFoundError, ValueError, IndexError):
            continue
        if pos == size:
            return True
    return False


def test_tail_prints_new_records(tmp_path):
    d = write_log(tmp_path, n=3)
    p = subprocess.Popen([BIN, "audit", "tail", str(d), "--count", "4", "--interval", "20"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # tail opens the newest segment and seeks to its end: records
        # written before that are never printed. Wait until it has (an fd
        # on that file at its size), not a fixed 0.3 s.
        seg = os.path.join(str(d), segments(d)[-1])
        wait_until(lambda: fd_at_end(p.pid, seg), 10 * SLOW, what="audit tail at the segment's end")
        r = run_cli(["audit", "selftest-write", str(d), "4", "--key", str(tmp_path / "identity.key")])
        assert r.returncode == 0, r.stderr
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    recs = [json.loads(ln) for ln in out.splitlines()]
    assert [x["attrs"]["i"] for x in recs] == [3, 4, 5, 6]   # only the new ones


def test_tail_reads_the_configured_data_dir(tmp_path):
    """Without DIR, tail reads <paths.data_dir>/audit of the config (--config
    or RON_CONFIG, as other commands); an amnesia node's log is in RAM only:
    tail says where to read it instead."""
    data = tmp_path / "data"
    data.mkdir()
    d = write_log(data, name="audit", n=3)
    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"paths": {"data_dir": str(data)}}))
    r = run_cli(["audit", "tail", "--from-start", "--count", "3", "--config", str(cfg)])
    assert r.returncode == 0, r.stderr
    assert [json.loads(ln)["attrs"]["i"] for ln in r.stdout.splitlines()] == [0, 1, 2]
    r = run_cli(["audit", "tail", "--from-start", "--count", "2"], env={"RON_CONFIG": str(cfg)})
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr
    assert os.path.isdir(d)
    cfg.write_text(json.dumps({"paths": {"data_dir": str(data)}, "amnesia": True}))
    r = run_cli(["audit", "tail", "--count", "1", "--config", str(cfg)])
    assert r.returncode == 1 and "amnesia" in r.stderr and "/api/v1/audit/recent" in r.stderr, r
    r = run_cli(["audit", "tail", "--config", str(tmp_path / "missing.json")])
    assert r.returncode == 2 and "config error" in r.stderr, r


def test_usage_errors(tmp_path):
    assert run_cli(["audit"]).returncode == 2
    assert run_cli(["audit", "verify"]).returncode == 2
    assert run_cli(["audit", "nope"]).returncode == 2
    r = verify(tmp_path)
    assert r.returncode == 3 and "node.pub" in r.stderr
