"""The long soak (`make soak`, not in CI): OVC_SOAK_MINUTES (default 30) of the model
test's mixed workload in three places at once (the shared rule's folder, another rule's
folder, a public folder), each against its twin on plain disk, while the policy is
published and fetched again every minute, the user locks and unlocks every 2.5 minutes,
and the agent is restarted every 5 minutes (OVC_SOAK_INTERVALS=60,150,300 seconds). Then a full verification: every file equals
its twin, nothing plaintext reached the encrypted folders' backing side. The figures go
to stdout and to BUILD/soak-report.txt.
"""
import os
import random
import time

from overlaylib import MARK, overlay_env
from test_model import Model

import pytest

MINUTES = float(os.environ.get("OVC_SOAK_MINUTES", "30"))
# seconds between policy refreshes, lock/unlock cycles, agent restarts
REFRESH_S, LOCK_S, RESTART_S = (float(x) for x in
                                os.environ.get("OVC_SOAK_INTERVALS", "60,150,300").split(","))
SLICE = 100                      # operations per place between checks of the clock


@pytest.fixture(scope="module")
def soak_overlay(build, tmp_path_factory):
    yield from overlay_env(build, tmp_path_factory.mktemp("soak"))


def test_soak(soak_overlay, tmp_path, build):
    ov = soak_overlay
    seed = int(os.environ.get("OVC_MODEL_SEED", random.randrange(1 << 32)))
    places = [ov.fresh(name="soak"), ov.fresh(name="soak", legal=True),
              ov.fresh(name="soak", public=True)]
    models = []
    for k, p in enumerate(places):
        twin = tmp_path / f"twin{k}"
        twin.mkdir()
        models.append(Model(p, twin, seed + k))
    counts = {"ops": 0, "refreshes": 0, "locks": 0, "restarts": 0, "checks": 0}
    t0 = time.time()
    nxt = {"refresh": t0 + REFRESH_S, "lock": t0 + LOCK_S, "restart": t0 + RESTART_S}
    ops = [[getattr(m, "op_" + n) for n, _ in Model.WEIGHTS] for m in models]
    weights = [w for _, w in Model.WEIGHTS]
    interval = "1h"
    try:
        while time.time() - t0 < MINUTES * 60:
            for m, mops in zip(models, ops):
                for _ in range(SLICE):
                    m.rng.choices(mops, weights)[0]()
                counts["ops"] += SLICE
            now = time.time()
            if now >= nxt["refresh"]:
                # a new policy (another setting), fetched while handles are open
                interval = "2h" if interval == "1h" else "1h"
                ov.set_policy_setting("refresh_interval", interval)
                counts["refreshes"] += 1
                nxt["refresh"] = now + REFRESH_S
            if now >= nxt["lock"] or now >= nxt["restart"]:
                for m in models:                   # the twins cannot follow a lock
                    m.close_all()
                    m.check(f"before {'restart' if now >= nxt['restart'] else 'lock'}")
                    counts["checks"] += 1
            if now >= nxt["lock"]:
                p = ov.agent.oc("lock")
                assert p.returncode == 0, p.out + p.err
                full = [n for n in ("f0", "f1", "f2", "f3") if models[0].size_of(n)]
                if full:                           # an encrypted file: refused
                    try:
                        os.close(os.open(places[0] / full[0], os.O_RDONLY))
                        raise AssertionError(f"{full[0]} opened while locked")
                    except OSError as e:
                        assert e.errno == 13, e
                p = ov.agent.unlock()
                assert p.returncode == 0, p.out + p.err
                ov.agent.wait_status(lambda s: s["state"] == "ready", 10, "ready")
                counts["locks"] += 1
                nxt["lock"] = now + LOCK_S
            if now >= nxt["restart"]:
                ov.agent.restart()
                ov.agent.wait_policy(timeout=20)
                p = ov.agent.unlock()
                assert p.returncode == 0, p.out + p.err
                ov.agent.wait_status(lambda s: s["state"] == "ready", 10, "ready")
                ov.wait_mounted()
                counts["restarts"] += 1
                nxt["restart"] = now + RESTART_S
        for m in models:
            m.close_all()
            m.check("at the end")
        hits = ov.grep_backing(MARK)
        assert hits == [], hits
        encrypted = ov.check_backing()
    finally:
        for m in models:
            m.close_all()
    el = time.time() - t0
    report = (f"soak: seed {seed}, {el / 60:.1f} min, {counts['ops']} operations "
              f"({counts['ops'] / el:.0f}/s) in 3 places, {counts['refreshes']} policy "
              f"refreshes, {counts['locks']} lock/unlock cycles, {counts['restarts']} agent "
              f"restarts, {counts['checks'] + 3} full comparisons with the twins: all equal; "
              f"{encrypted} encrypted files on the backing side, no plaintext marker in any.")
    print(report)
    (build / "soak-report.txt").write_text(report + "\n")
