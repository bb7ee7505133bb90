#!/usr/bin/env python3
"""Generate N search documents straight into the search service's SQLite
file, with the schema of src/svc/search/search_db.c (docs, names +
contentless FTS5, user_version 2; no names generated): each a fake cid, a text/plain type and 20 words drawn from a
Zipf-like vocabulary of 5000 ("w0" most common). Usage: PATH N."""
import os
import random
import sqlite3
import sys


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    rnd = random.Random(1)
    vocab = ["w%d" % i for i in range(5000)]
    weights = [1.0 / (i + 1) for i in range(5000)]
    db = sqlite3.connect(path)
    db.executescript(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
        "CREATE TABLE IF NOT EXISTS docs(id INTEGER PRIMARY KEY, cid BLOB UNIQUE NOT NULL,"
        " size INTEGER NOT NULL, ctype TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS names(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
        " cid BLOB NOT NULL, seq INTEGER NOT NULL);"
        "CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(ctype, body, name, content='',"
        " tokenize='unicode61', prefix='2 3');"
        "PRAGMA user_version = 2;")
    batch = 20000
    for start in range(0, n, batch):
        rows, texts = [], []
        for i in range(start, min(n, start + batch)):
            body = " ".join(rnd.choices(vocab, weights, k=20))
            rows.append((i + 1, os.urandom(32), len(body), "text/plain"))
            texts.append((i + 1, "text plain", body, ""))
        db.executemany("INSERT INTO docs(id, cid, size, ctype) VALUES(?,?,?,?)", rows)
        db.executemany("INSERT INTO fts(rowid, ctype, body, name) VALUES(?,?,?,?)", texts)
        db.commit()
    db.execute("INSERT INTO fts(fts) VALUES('optimize')")
    db.commit()
    db.close()


if __name__ == "__main__":
    main()
