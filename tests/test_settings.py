"""Settings come from YIMA_* variables and flags; bad values stop start-up naming the variable."""

from __future__ import annotations

import msgspec
import pytest

from server.settings import Mode, Settings, SettingsError, check_can_serve, load_settings


def test_defaults_and_environment():
    s = load_settings({"YIMA_PORT": "9001", "YIMA_MODE": "development", "YIMA_DATA_DIR": "/tmp/x"})
    assert (s.port, s.mode, str(s.data_dir)) == (9001, Mode.DEVELOPMENT, "/tmp/x")
    assert s.base_url == "http://127.0.0.1:9001"
    assert load_settings({"YIMA_MODE": "development"}, port=9100).port == 9100  # flags win


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"YIMA_PORT": "eighty"}, "YIMA_PORT"),
        ({"YIMA_PORT": "70000"}, "YIMA_PORT"),
        ({"YIMA_WORKERS": "2", "YIMA_MODE": "development"}, "YIMA_REDIS_URL"),
        ({"YIMA_DATABASE_URL": "mysql://x", "YIMA_MODE": "development"}, "YIMA_DATABASE_URL"),
        ({"YIMA_MODE": "staging"}, "YIMA_MODE"),
        ({"YIMA_POTR": "1"}, "YIMA_POTR"),
    ],
)
def test_bad_values_name_the_variable(env, names):
    with pytest.raises(SettingsError, match=names):
        load_settings(env)


def test_the_test_suites_variables_are_not_settings_and_typos_still_are_refused():
    suite = {
        "YIMA_TEST_ADMIN_DSN": "postgresql://x@127.0.0.1/test",
        "YIMA_TEST_REDIS_URL": "redis://127.0.0.1",
    }
    assert load_settings({**suite, "YIMA_PORT": "9002"}).port == 9002
    with pytest.raises(SettingsError, match="YIMA_TESTS_REDIS_URL"):
        load_settings({"YIMA_TESTS_REDIS_URL": "redis://127.0.0.1"})
    # the YIMA_TEST_ names are the suite's only while no setting is called test_*
    assert not [f.name for f in msgspec.structs.fields(Settings) if f.name.startswith("test_")]


def test_settings_are_frozen():
    s = load_settings({"YIMA_MODE": "development"})
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


def test_production_serving_needs_real_sms_and_payment_providers():
    with pytest.raises(SettingsError, match="YIMA_SMS_GATEWAY_URL"):
        check_can_serve(load_settings({}))
    check_can_serve(
        load_settings({"YIMA_SMS_GATEWAY_URL": "https://sms.example", "YIMA_SMS_GATEWAY_SECRET": "s"})
    )
