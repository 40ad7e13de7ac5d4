"""
Fixtures of the end-to-end tests (tests/integration/t-NN-name/ and cases/).

  server     a factory: server(tls="offer", cert=True, relay_networks=...,
             listener_options={...}, env={...}, wrapper=[...], start=True)
             makes a private directory with a bridgehead.conf (server name
             bh1.example.com, accepted domain example.com, one listener on a
             free port of 127.0.0.1, max_message_size 10M), runs
             `bridgehead cert selfsign` unless cert=False, starts
             `bridgehead serve --foreground` and returns a bhtest.Server.
             At teardown every server still running gets SIGTERM and must
             exit 0; a server that died on its own is a failure.  The
             server's stderr is attached to the report of a failed test.

The helpers themselves (Server, Client, message helpers) live in bhtest.py.
Set BH_KEEP=1 to keep the servers' directories for inspection.
"""

import os

import pytest

import bhtest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "bh_rep_" + rep.when, rep)
    if rep.failed:
        for n, srv in enumerate(getattr(item, "bh_servers", []), 1):
            rep.sections.append((f"bridgehead {n} stderr ({srv.dir})", srv.stderr()[-20000:]))


@pytest.fixture
def server(request):
    made = []
    request.node.bh_servers = made

    def make(start=True, **kw):
        srv = bhtest.Server(**kw)
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield make

    problems = []
    for n, srv in enumerate(made, 1):
        try:
            srv.stop()
        except Exception as e:  # report every server, then fail once
            problems.append(f"server {n}: stopping failed: {e}")
        problems += [f"server {n} ({srv.dir}): {p}" for p in srv.problems]
    failed = any(getattr(getattr(request.node, "bh_rep_" + w, None), "failed", False)
                 for w in ("setup", "call"))
    if not problems and not failed and not os.environ.get("BH_KEEP"):
        for srv in made:
            srv.cleanup()
    if problems:
        pytest.fail("\n".join(problems) + "\n" + "\n".join(
            f"--- server {n} stderr ---\n{s.stderr()[-5000:]}" for n, s in enumerate(made, 1)),
            pytrace=False)
