"""Fault injection helpers: private PostgreSQL and libvirtd instances a test may restart or
kill, a TCP proxy that can cut a connection, and the whole split deployment on loopback
(``cluster.Cluster``) that ``scripts/rehearsal``, the rehearsal and fault tests and
``benchmarks.load`` start."""
