"""The profile switch (localaws/profile.py): realistic by default, fast on request, single
settings overridable, bad input refused with a message naming the setting."""

import pytest

from conftest import start_server


def test_profile_defaults_switches_and_refuses_bad_settings(tmp_path):
    srv = start_server(tmp_path, profile="realistic")
    try:
        assert srv.ctl("GET", "/health")["profile"] == "realistic"
        realistic = srv.ctl("GET", "/profile")
        assert realistic["shutdown_s"] > 0 and realistic["pending_s"] > 0 and realistic["iam_propagation_s"] > 0
        assert realistic["schedule_jitter_s"] == 60  # "runs within that minute" (events.py)
        fast = srv.ctl("POST", "/profile", {"name": "fast"})
        assert fast["name"] == "fast" and fast["shutdown_s"] == 0 and fast["pending_s"] == 0
        assert fast["schedule_jitter_s"] == 0
        hung = srv.ctl("POST", "/profile", {"name": "realistic", "shutdown_s": 300})
        assert hung["shutdown_s"] == 300 and hung["pending_s"] == realistic["pending_s"]
        with pytest.raises(AssertionError, match="shutdown_seconds"):
            srv.ctl("POST", "/profile", {"shutdown_seconds": 1})
        with pytest.raises(AssertionError, match="pending_s must be a finite number"):
            srv.ctl("POST", "/profile", {"pending_s": -1})
        srv.ctl("POST", "/reset")
        assert srv.ctl("GET", "/profile") == realistic
    finally:
        srv.proc.terminate()
        srv.proc.wait(timeout=10)
