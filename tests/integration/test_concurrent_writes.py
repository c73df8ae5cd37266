"""Writes never 503 under contention: four people logging in over and over while thirty
nodes enroll one after another, each with a token ``fedoracloud add-host`` has just issued,
against the real app served by waitress on a real database (a SQLite file, or PostgreSQL).

On SQLite a transaction that had read and then wrote while another held the write lock
failed at once ("database is locked"), and this load answered 503 to logins and
enrollments and made add-host fail; writes now take the lock up front and a retried
request pauses first.  ``benchmarks/concurrent_writes.py`` runs the same load and prints
the figures."""

from __future__ import annotations

from benchmarks.concurrent_writes import run, write_ini


def test_logins_enrollments_and_add_host_at_once_never_fail(tmp_path, empty_database):
    figures = run(write_ini(tmp_path, empty_database), nodes=30, clients=4)
    assert figures.failures == [], figures.failures[:10]
    assert figures.statuses["enroll", 202] == 30
    assert figures.statuses["add-host", 0] == 30
    assert figures.count("login") == figures.statuses["login", 303] > 0
